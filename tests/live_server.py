"""A real server for tests: ``create_app`` + ``server_config`` (exactly as ``zeta serve`` builds
them) served by uvicorn on a thread, on a free loopback port (a helper, not tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

from router_runtime.serving.http import create_app, server_config

MSG = [{"role": "user", "content": "hello"}]


class Live:
    """``create_app`` + ``server_config`` served by uvicorn on a thread, on a free loopback port."""

    def __init__(self, service, **limits):
        import uvicorn

        app_kw = {k: limits.pop(k) for k in ("body_timeout_s", "max_body_bytes", "token") if k in limits}
        self.token = app_kw.get("token")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.service = service
        config = server_config(create_app(service, **app_kw), port=self.port, log_level="warning", **limits)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)

    def request(self, method, path, body=None, *, raw: bytes | None = None, timeout=30, extra_headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        headers.update(extra_headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if r.headers.get("content-type", "").startswith(
                    "application/json") else text)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text.startswith("{") else text)

    def chat(self, zeta=None, messages=MSG, **kw):
        body = {"model": "auto", "messages": messages, **kw}
        if zeta is not None:
            body["zeta"] = zeta
        return self.request("POST", "/v1/chat/completions", body)
