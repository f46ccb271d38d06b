"""``python -m gateway serve-grpc``: starts, prints where it listens, serves tritonclient, stops on SIGTERM."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402


def test_serve_grpc_serves_until_sigterm(demo_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(demo_dir / "models" / "pctr_lr", models / "pctr_lr")
    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n")
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve-grpc", "--models", str(models), "--port", "0",
         "--workers", "2", "--token-file", str(token_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:  # fmt: skip
        try:
            _drive(proc)
        finally:
            if proc.poll() is None:
                proc.kill()


def _drive(proc: subprocess.Popen[str]) -> None:
    """The banner gives the address; the token guards every call; SIGTERM ends the process cleanly."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        banner = lines.get(timeout=WAIT_S)
    except queue.Empty:
        pytest.fail("serve-grpc printed nothing")
    assert banner.startswith("scoregate gRPC (KServe V2) listening on 127.0.0.1:"), banner
    assert "bearer token required; 1 models" in banner
    address = banner.split(" listening on ")[1].split(" ")[0]
    client = tritonclient_grpc.InferenceServerClient(address)
    headers = {"authorization": "Bearer t0ken"}
    with pytest.raises(InferenceServerException):
        client.is_server_live()
    assert client.is_model_ready("pctr_lr", headers=headers)
    meta = client.get_model_metadata("pctr_lr", headers=headers, as_json=True)
    features = int(meta["inputs"][0]["shape"][1])
    inp = tritonclient_grpc.InferInput("features", [3, features], "FP32")
    inp.set_data_from_numpy(np.zeros((3, features), np.float32))
    scores = client.infer("pctr_lr", [inp], headers=headers).as_numpy("score")
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT_S) == 0


def test_serve_grpc_serves_prometheus_metrics_of_what_it_scored(demo_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(demo_dir / "models" / "pctr_lr", models / "pctr_lr")
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve-grpc", "--models", str(models), "--port", "0", "--workers", "2",
         "--metrics-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert "; metrics on http://127.0.0.1:" in banner, banner
            address = banner.split(" listening on ")[1].split(" ")[0]
            url = banner.split("; metrics on ")[1].strip()
            client = tritonclient_grpc.InferenceServerClient(address)
            version = client.get_model_metadata("pctr_lr", as_json=True)["versions"][0]
            features = int(client.get_model_metadata("pctr_lr", as_json=True)["inputs"][0]["shape"][1])
            for rows in (1, 8, 8, 64, 2):
                inp = tritonclient_grpc.InferInput("features", [rows, features], "FP32")
                inp.set_data_from_numpy(np.zeros((rows, features), np.float32))
                client.infer("pctr_lr", [inp])
            labels = f'model="pctr_lr",stage="serving",version="{version}"'
            deadline = time.monotonic() + WAIT_S  # the monitor's worker aggregates once a second
            while True:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    text = resp.read().decode()
                if f"scoregate_model_requests_total{{{labels}}} 5.0" in text or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert f"scoregate_model_requests_total{{{labels}}} 5.0" in text, text[-2000:]
            assert f"scoregate_model_rows_total{{{labels}}} 83.0" in text
            assert f"scoregate_model_latency_seconds_count{{{labels}}} 5.0" in text
            assert f'scoregate_model_batch_size_bucket{{le="8",{labels}}} 4.0' in text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=WAIT_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_serve_grpc_rejects_half_a_tls_pair(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve-grpc", "--models", str(tmp_path), "--tls-cert", "x.pem"],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "tls_cert and tls_key go together" in proc.stderr


def test_help_describes_serve_grpc() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve-grpc", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    for option in ("--tls-cert", "--tls-key", "--token", "--max-message-mb", "--workers", "--max-in-flight"):
        assert option in proc.stdout
