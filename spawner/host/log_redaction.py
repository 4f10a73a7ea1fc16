"""No secret in a log: tokens, passwords, cookies and private keys are masked in every record.

`install()` makes every log record of the process pass through `redact` (message, exception
text and stack) by wrapping Python's log-record factory, so it covers every logger and
handler, ours and the libraries' (JupyterHub, tornado, asyncssh). The hub installs it from
`jupyterhub_config.py`, each managed service of ours at its start, and a managed service that
is not ours (jupyterhub-idle-culler) is started through this module:

    python -m spawner.host.log_redaction jupyterhub_idle_culler --timeout=3600 ...

which installs it, and a redacting `sys.excepthook`, and then runs that module as `python -m`
would. What cannot be told from ordinary text is masked by shape: JupyterHub's tokens and
OAuth codes are 32 hex digits standing alone.
"""

from __future__ import annotations

import logging
import re
import runpy
import sys
import threading
import traceback

MASK = "[secret]"

# A secret-named field and its value, in `name=value`, `name: value`, JSON and header form
# ("Authorization: token abc", '"api_token": "abc"', "CONFIGPROXY_AUTH_TOKEN=abc").
_NAMED = re.compile(
    r"(?i)(\b[\w-]*(?:token|password|passwd|secret|cookie|authorization|api[_-]?key)[\w-]*"
    r"[\"']?\s*[=:]\s*[\"']?)"
    r"(?:(?:token|bearer|basic)\s+)?"
    r"([^\s\"'&,;}\]]+)"
)
# A header-style credential without its field name ("token abc...", "Bearer abc...").
_SCHEME = re.compile(r"(?i)\b((?:token|bearer)\s+)([A-Za-z0-9_.~+/=-]{16,})")
# JupyterHub's API tokens and OAuth codes: 32 hex digits, not part of a longer hex run (a
# container id has 64, a short id 12).
_HUB_TOKEN = re.compile(r"(?<![0-9A-Fa-f])[0-9a-f]{32}(?![0-9A-Fa-f])")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
# A Cookie header's whole value (several name=value pairs).
_COOKIE_HEADER = re.compile(r"(?i)(\b(?:set-)?cookie\s*:\s*)([^\r\n]+)")


def redact(text: str) -> str:
    """`text` with every secret it visibly holds replaced by `[secret]`."""
    if not text:
        return text
    text = _PRIVATE_KEY.sub(MASK, text)
    text = _COOKIE_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _NAMED.sub(lambda m: m.group(1) + MASK, text)
    text = _SCHEME.sub(lambda m: m.group(1) + MASK, text)
    return _HUB_TOKEN.sub(MASK, text)


def _redacting(factory):
    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            # Formatted here, once: handlers and formatters then see only the masked text.
            record.msg, record.args = redact(record.getMessage()), ()
        except Exception:  # a broken format string: logging reports it at emit, as ever
            return record
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    make_record.cudaspawner_redacting = True
    return make_record


def install() -> None:
    """Mask secrets in every log record of this process from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "cudaspawner_redacting", False):
        logging.setLogRecordFactory(_redacting(factory))
    if not getattr(sys.excepthook, "cudaspawner_redacting", False):
        sys.excepthook = _excepthook
        threading.excepthook = _thread_excepthook


def _excepthook(kind, value, tb) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


_excepthook.cudaspawner_redacting = True


def _thread_excepthook(hook_args) -> None:
    if hook_args.exc_type is SystemExit:
        return
    name = hook_args.thread.name if hook_args.thread else "?"
    sys.stderr.write(f"Exception in thread {name}:\n")
    _excepthook(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback)


def main(argv: list[str] | None = None) -> None:
    """`python -m spawner.host.log_redaction MODULE ARGS...`: run MODULE with secrets masked."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m spawner.host.log_redaction MODULE [ARGS...]")
    install()
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
