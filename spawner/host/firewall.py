"""What containers on the hub's network may reach on the host: the hub's API port and DNS.

Each hub opens its API port with one ACCEPT rule in a chain per bridge. Several hubs may
share one network (a second hub, the test suite), so rules add up, and each rule names the
process that owns it in an iptables comment. A hub removes its own rule when it exits, and
at start it removes the rules of hubs that are gone (killed outright, so no exit handler
ran): a port left open would let every notebook reach whatever listens there next.

Rule building and the "is this rule stale" decision are pure functions of text; the
iptables and /proc reads sit at the bottom of the module.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# --- rules as data ---------------------------------------------------------------------------
# Cloud instance metadata (169.254.169.254 on AWS, GCP, Azure) hands out the machine's
# credentials to whoever asks; link-local addresses are nothing a notebook needs.
LINK_LOCAL = "169.254.0.0/16"
OWNER_PREFIX = "cudaspawner-hub"
DNS_PORT = 53


def bridge_name(attrs: dict) -> str:
    """The host interface of a bridge network (Docker's default: br-<12 hex of its id>)."""
    return (attrs.get("Options") or {}).get("com.docker.network.bridge.name") or (
        "br-" + attrs["Id"][:12]
    )


def chain_name(bridge: str) -> str:
    # iptables chain names have at most 28 characters; "CUDASPAWNER-br-<12 hex>" has 27.
    return f"CUDASPAWNER-{bridge}"[:28]


@dataclass(frozen=True)
class Owner:
    """The process a port rule belongs to. The PID namespace and the start time make it
    unambiguous: a PID seen from another namespace means nothing here, and a PID reused by
    a new process has another start time."""

    pidns: str
    pid: int
    start: str

    def comment(self) -> str:
        return f"{OWNER_PREFIX} pidns={self.pidns} pid={self.pid} start={self.start}"

    @classmethod
    def parse(cls, comment: str) -> Owner | None:
        m = re.fullmatch(
            rf"{OWNER_PREFIX} pidns=(\S+) pid=(\d+) start=(\S+)", comment.strip().strip('"')
        )
        return cls(m.group(1), int(m.group(2)), m.group(3)) if m else None


def port_rules(bridge: str, ports: Iterable[int], owner: Owner | None) -> list[list[str]]:
    """The rules that open `ports` (TCP) on the host to containers on `bridge`, each
    tagged with its owner when one is given."""
    chain = chain_name(bridge)
    tag = ["-m", "comment", "--comment", owner.comment()] if owner else []
    return [[chain, "-p", "tcp", "--dport", str(int(p)), *tag, "-j", "ACCEPT"] for p in ports]


def host_input_rules(bridge: str, ports: Iterable[int], owner: Owner | None) -> list[list[str]]:
    """The iptables rules (arguments after `iptables -w`) that let containers on `bridge`
    reach the host only on `ports` (TCP: the hub's API) and its DNS resolver.

    Each rule is given as the arguments of a check (`-C`); `apply_host_rules` turns the
    missing ones into inserts or appends, so the rules of several hubs sharing one network
    add up instead of replacing each other. Replies to connections the host opened (the hub
    and proxy talking to servers) are let through first; everything else from the
    containers to the host is rejected, so it fails at once rather than hanging.
    """
    chain = chain_name(bridge)
    accept = [
        [chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        *port_rules(bridge, ports, owner),
        [chain, "-p", "udp", "--dport", str(DNS_PORT), "-j", "ACCEPT"],
        [chain, "-p", "tcp", "--dport", str(DNS_PORT), "-j", "ACCEPT"],
    ]
    return [["INPUT", "-i", bridge, "-j", chain], *accept, [chain, "-j", "REJECT"]]


def forward_rules(bridge: str) -> list[list[str]]:
    """Rules for Docker's DOCKER-USER chain: containers on `bridge` cannot reach
    link-local addresses such as a cloud's metadata service (which is not on this host,
    so the INPUT rules do not see it)."""
    return [["DOCKER-USER", "-i", bridge, "-d", LINK_LOCAL, "-j", "REJECT"]]


def apply_host_rules(rules: list[list[str]], run: Callable[[list[str]], int]) -> None:
    """Make sure each rule is present: the jump and accepts go first, the reject last."""
    chain = rules[-1][0]
    run(["-N", chain])  # fails harmlessly when it exists
    *firsts, last = rules
    for rule in reversed(firsts):
        if run(["-C", *rule]) != 0:
            if run(["-I", rule[0], "1", *rule[1:]]) != 0:
                raise OSError(f"iptables could not add: {' '.join(rule)}")
    if run(["-C", *last]) != 0 and run(["-A", *last]) != 0:
        raise OSError(f"iptables could not add: {' '.join(last)}")


# --- which rules are stale -------------------------------------------------------------------
def stale_port_rules(
    listing: str,
    pidns: str,
    alive: Callable[[Owner], bool],
    listening: set[int],
) -> list[list[str]]:
    """The port rules in `iptables -S <chain>` output whose hub is gone, as `-D` arguments.

    - A rule with an owner in our PID namespace is stale when that process is gone.
      One from another namespace (a hub in a container) is left alone: we cannot tell.
    - A rule without an owner comes from a version before owners; nothing creates one
      now, so it is stale when nothing listens on its port.
    DNS and the chain's other rules are never touched.
    """
    stale = []
    for line in listing.splitlines():
        args = shlex.split(line)
        if len(args) < 2 or args[0] != "-A" or args[-2:] != ["-j", "ACCEPT"]:
            continue
        port = _option(args, "--dport")
        if port is None or not port.isdigit() or int(port) == DNS_PORT:
            continue
        comment = _option(args, "--comment")
        owner = Owner.parse(comment) if comment is not None else None
        if comment is not None and owner is None:
            continue  # someone else's rule (an admin's): not ours to judge
        if owner is not None:
            if owner.pidns != pidns or alive(owner):
                continue
        elif int(port) in listening:
            continue
        stale.append(args[1:])
    return stale


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args[:-1] else None


def listening_tcp_ports(tables: Iterable[str]) -> set[int]:
    """The local TCP ports in LISTEN state, from the text of /proc/net/tcp and tcp6."""
    ports = set()
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # 0A: TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# --- the host: /proc and iptables ------------------------------------------------------------
def _pidns(pid: int | str) -> str:
    return re.sub(r"\D", "", os.readlink(f"/proc/{pid}/ns/pid"))


def _stat(pid: int | str) -> list[str]:
    # /proc/<pid>/stat from field 3 (state) on; the command name before it may hold
    # spaces, so split after the closing parenthesis.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_owner(pid: int | str = "self") -> Owner | None:
    """A process (by default this one) as the owner of port rules; None where /proc
    cannot tell."""
    try:
        number = os.getpid() if pid == "self" else int(pid)
        return Owner(_pidns(pid), number, _stat(pid)[19])  # field 22: the start time
    except (OSError, IndexError):
        return None


def this_process() -> Owner | None:
    """This process as the owner of the rules it adds."""
    return process_owner("self")


def _alive(owner: Owner) -> bool:
    """Whether the owner still runs: same start time, and not a zombie (a killed hub whose
    parent has not reaped it yet is gone for our purpose)."""
    try:
        fields = _stat(owner.pid)
        return fields[19] == owner.start and fields[0] != "Z"
    except (OSError, IndexError):
        return False


def _listening() -> set[int]:
    tables = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                tables.append(f.read())
        except OSError:
            pass
    return listening_tcp_ports(tables)


def _iptables(args: list[str]) -> int:
    import subprocess

    done = subprocess.run(["iptables", "-w", *args], capture_output=True, check=False)
    return done.returncode


def sweep_stale_ports(bridge: str) -> int:
    """Remove the port rules of hubs that are gone from `bridge`'s chain; how many."""
    import subprocess

    me = this_process()
    if me is None:
        return 0
    listing = subprocess.run(
        ["iptables", "-w", "-S", chain_name(bridge)], capture_output=True, text=True, check=False
    ).stdout
    removed = 0
    for rule in stale_port_rules(listing, me.pidns, _alive, _listening()):
        removed += _iptables(["-D", *rule]) == 0
    return removed


def drop_chain(bridge: str) -> None:
    """Remove the rules of a bridge that is about to go away (best effort)."""
    chain = chain_name(bridge)
    try:
        for rule in forward_rules(bridge):
            _iptables(["-D", *rule])
        _iptables(["-D", "INPUT", "-i", bridge, "-j", chain])
        _iptables(["-F", chain])
        _iptables(["-X", chain])
    except OSError:
        pass


def close_host_ports(bridge: str, ports: Iterable[int]) -> None:
    """Remove the rules this process added for `ports` on `bridge` (best effort).

    A hub calls this as it exits: a port it no longer listens on must not stay open to the
    containers, for whatever listens there next (another service, the SSH gateway) would be
    reachable from every notebook. Only this process's own rules go: a second hub started
    by mistake on a running hub's port leaves the running hub's rule alone. The chain's
    jump, DNS and final reject stay: they are shared by every hub on the network.
    """
    me = this_process()
    try:
        for rule in port_rules(bridge, ports, me):
            _iptables(["-D", *rule])
        sweep_stale_ports(bridge)
    except OSError:
        return


def restrict_host_access(client, name: str, ports: Iterable[int]) -> str | None:
    """Let containers on network `name` reach the host only on `ports` (and DNS), and
    close the ports of hubs that are gone.

    Returns None when the rules are in place, else one sentence saying why not (no
    iptables, not root), for the hub to log as a warning.
    """
    bridge = bridge_name(client.networks.get(name).attrs)
    rules = host_input_rules(bridge, ports, this_process())
    try:
        if _iptables(["-S", "INPUT"]) != 0:
            raise PermissionError("iptables -S INPUT failed")
        apply_host_rules(rules, _iptables)
        sweep_stale_ports(bridge)
    except OSError as e:
        return (
            f"Containers on the network {name!r} can reach every port this host listens on "
            f"from {bridge}: could not set iptables rules ({e}). Run the hub as root with "
            "iptables installed, or firewall that interface yourself."
        )
    for rule in forward_rules(bridge):
        if _iptables(["-C", *rule]) != 0 and _iptables(["-I", rule[0], "1", *rule[1:]]) != 0:
            return (
                f"Containers on the network {name!r} can reach link-local addresses such as "
                "a cloud's metadata service (169.254.169.254): Docker's DOCKER-USER chain is "
                "missing (is Docker managing iptables?)."
            )
    return None
