from google.protobuf import descriptor_pool as _descriptor_pool
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
POOL: _descriptor_pool.DescriptorPool

class DecideRequest(_message.Message):
    __slots__ = ("request_id", "context", "user", "budget_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    context: int
    user: int
    budget_ms: float
    def __init__(self, request_id: _Optional[int] = ..., context: _Optional[int] = ..., user: _Optional[int] = ..., budget_ms: _Optional[float] = ...) -> None: ...

class ModelOutcome(_message.Message):
    __slots__ = ("model", "tier", "served_by", "error")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    model: str
    tier: str
    served_by: str
    error: str
    def __init__(self, model: _Optional[str] = ..., tier: _Optional[str] = ..., served_by: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("request_id", "winners", "prices", "pod_seconds", "retrieved", "ranked", "stage_us", "models", "degraded", "total_us")
    class StageUsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WINNERS_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    POD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVED_FIELD_NUMBER: _ClassVar[int]
    RANKED_FIELD_NUMBER: _ClassVar[int]
    STAGE_US_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    winners: _containers.RepeatedScalarFieldContainer[int]
    prices: _containers.RepeatedScalarFieldContainer[float]
    pod_seconds: float
    retrieved: int
    ranked: int
    stage_us: _containers.ScalarMap[str, float]
    models: _containers.RepeatedCompositeFieldContainer[ModelOutcome]
    degraded: bool
    total_us: float
    def __init__(self, request_id: _Optional[int] = ..., winners: _Optional[_Iterable[int]] = ..., prices: _Optional[_Iterable[float]] = ..., pod_seconds: _Optional[float] = ..., retrieved: _Optional[int] = ..., ranked: _Optional[int] = ..., stage_us: _Optional[_Mapping[str, float]] = ..., models: _Optional[_Iterable[_Union[ModelOutcome, _Mapping]]] = ..., degraded: _Optional[bool] = ..., total_us: _Optional[float] = ...) -> None: ...
