"""Production model monitoring: latency, prediction shift, feature drift, calibration and regression gates.

One concept per module:

* :mod:`~gateway.monitoring.observer`: the request-path seam (:class:`ScoreObserver`) and its staging buffers;
* :mod:`~gateway.monitoring.monitor`: :class:`Monitor`, the assembly, stepped by :mod:`~gateway.monitoring.worker`;
* :mod:`~gateway.monitoring.reference`: a version's validation distribution and thresholds from its variability;
  :mod:`~gateway.monitoring.recorder` records references from traffic replayed through the serving path;
* :mod:`~gateway.monitoring.divergence`: PSI and Jensen-Shannon;
* :mod:`~gateway.monitoring.shift`: sliding-window shift detection (scores); :mod:`~gateway.monitoring.drift`:
  per-feature drift naming the top drifting features;
* :mod:`~gateway.monitoring.join`: delayed labels joined by request id within a maturity window;
* :mod:`~gateway.monitoring.calibration`: calibration ratio, ECE, normalised entropy, ratio drift;
* :mod:`~gateway.monitoring.regression`: canary/shadow against live, SPRT with a false-alarm budget, rollback seam;
* :mod:`~gateway.monitoring.latency`: HdrHistogram and Prometheus-bucket latencies;
* :mod:`~gateway.monitoring.metrics`: the Prometheus collector and ``/metrics`` endpoint;
* :mod:`~gateway.monitoring.report`: snapshots, text reports and PNG plots (``scoregate monitor report``).

Importing this package starts nothing and reads no environment; ``prometheus_client`` (the ``monitoring`` extra)
is needed by :mod:`~gateway.monitoring.metrics` and :class:`Monitor`.
"""

from gateway.monitoring.calibration import CalibrationMonitor, CalibrationReport, RatioDrift, calibration_metrics
from gateway.monitoring.divergence import jensen_shannon, psi
from gateway.monitoring.drift import DriftingFeature, FeatureDrift
from gateway.monitoring.join import JoinCounters, LabelJoin, Matured
from gateway.monitoring.latency import LatencyRecorder, SeriesKey
from gateway.monitoring.metrics import MonitorCollector, serve_metrics
from gateway.monitoring.monitor import Monitor, MonitorOptions
from gateway.monitoring.observer import RequestModels, ScoreObserver
from gateway.monitoring.recorder import ModelReferences, ReferenceRecorder
from gateway.monitoring.reference import Reference
from gateway.monitoring.regression import GateDecision, GateOptions, GateStatus, RegressionGate, RollbackHandler
from gateway.monitoring.shift import Evaluation, ShiftDetector

__all__ = [
    "CalibrationMonitor",
    "CalibrationReport",
    "DriftingFeature",
    "Evaluation",
    "FeatureDrift",
    "GateDecision",
    "GateOptions",
    "GateStatus",
    "JoinCounters",
    "LabelJoin",
    "LatencyRecorder",
    "Matured",
    "ModelReferences",
    "Monitor",
    "MonitorCollector",
    "MonitorOptions",
    "RatioDrift",
    "Reference",
    "ReferenceRecorder",
    "RegressionGate",
    "RequestModels",
    "RollbackHandler",
    "ScoreObserver",
    "SeriesKey",
    "ShiftDetector",
    "calibration_metrics",
    "jensen_shannon",
    "psi",
    "serve_metrics",
]
