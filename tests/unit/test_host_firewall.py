"""The host firewall as data (spawner.host_firewall): which rules a hub adds, and which
rules of other hubs it judges stale, without iptables."""

from __future__ import annotations

from spawner.host.firewall import (
    Owner,
    apply_host_rules,
    chain_name,
    host_input_rules,
    listening_tcp_ports,
    stale_port_rules,
)

HUB = Owner("4026531836", 4242, "2886572")


def test_host_rules_accept_replies_the_hub_port_and_dns_then_reject_the_rest():
    rules = host_input_rules("br-0123456789ab", [8081], HUB)
    chain = chain_name("br-0123456789ab")
    assert chain == "CUDASPAWNER-br-0123456789ab" and len(chain) <= 28
    assert rules[0] == ["INPUT", "-i", "br-0123456789ab", "-j", chain]
    port = [r for r in rules if "8081" in r]
    assert port == [
        [chain, "-p", "tcp", "--dport", "8081", "-m", "comment", "--comment", HUB.comment()]
        + ["-j", "ACCEPT"]
    ]
    assert rules[-1] == [chain, "-j", "REJECT"]
    assert not any("--dport" in r and "8001" in r for r in rules)  # the proxy API: no


def test_an_owner_survives_its_comment_and_a_foreign_comment_is_no_owner():
    assert Owner.parse(HUB.comment()) == HUB
    assert Owner.parse(f'"{HUB.comment()}"') == HUB  # as iptables -S quotes it
    assert len(HUB.comment()) <= 256  # iptables' limit for a comment
    assert Owner.parse("allow grafana") is None


class FakeIptables:
    """Keeps rules in order per chain, like iptables, for -N/-C/-I/-A."""

    def __init__(self) -> None:
        self.chains: dict[str, list[list[str]]] = {"INPUT": []}

    def __call__(self, args: list[str]) -> int:
        op, chain, *rest = args
        if op == "-N":
            if chain in self.chains:
                return 1
            self.chains[chain] = []
            return 0
        rules = self.chains[chain]
        if op == "-C":
            return 0 if rest in rules else 1
        if op == "-I":
            rules.insert(int(rest[0]) - 1, rest[1:])
            return 0
        if op == "-A":
            rules.append(rest)
            return 0
        raise AssertionError(args)


def test_applying_twice_changes_nothing_and_a_second_hub_port_adds_up():
    ipt = FakeIptables()
    apply_host_rules(host_input_rules("br-x", [8081], HUB), ipt)
    once = {k: list(v) for k, v in ipt.chains.items()}
    apply_host_rules(host_input_rules("br-x", [8081], HUB), ipt)
    assert ipt.chains == once
    other = Owner(HUB.pidns, 5151, "99")
    apply_host_rules(host_input_rules("br-x", [9091], other), ipt)
    chain = ipt.chains[chain_name("br-x")]
    ports = [r[r.index("--dport") + 1] for r in chain if "--comment" in r]
    assert sorted(ports) == ["8081", "9091"]
    assert chain[-1] == ["-j", "REJECT"]  # the reject stays last
    assert ipt.chains["INPUT"] == [["-i", "br-x", "-j", chain_name("br-x")]]


def listing(*port_lines: str) -> str:
    """`iptables -S` output of a hub chain with the given port rules in it."""
    c = "CUDASPAWNER-br-x"
    return "\n".join(
        [
            f"-N {c}",
            f"-A {c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            *(f"-A {c} -p tcp -m tcp --dport {p}" for p in port_lines),
            f"-A {c} -p udp -m udp --dport 53 -j ACCEPT",
            f"-A {c} -p tcp -m tcp --dport 53 -j ACCEPT",
            f"-A {c} -j REJECT --reject-with icmp-port-unreachable",
        ]
    )


def owned(port: int, owner: Owner) -> str:
    return f'{port} -m comment --comment "{owner.comment()}" -j ACCEPT'


def test_the_rule_of_a_gone_hub_is_stale_and_a_running_hubs_is_not():
    gone = Owner(HUB.pidns, 777, "123")
    text = listing(owned(8081, HUB), owned(42123, gone))
    stale = stale_port_rules(text, HUB.pidns, alive=lambda o: o == HUB, listening=set())
    assert stale == [
        ["CUDASPAWNER-br-x", "-p", "tcp", "-m", "tcp", "--dport", "42123"]
        + ["-m", "comment", "--comment", gone.comment(), "-j", "ACCEPT"]
    ]


def test_a_reused_pid_does_not_keep_a_gone_hubs_rule():
    # The same PID, started later: another process now, so the rule is stale.
    reused = Owner(HUB.pidns, HUB.pid, "1")
    stale = stale_port_rules(
        listing(owned(8081, reused)), HUB.pidns, alive=lambda o: o == HUB, listening={8081}
    )
    assert len(stale) == 1


def test_a_hub_in_another_pid_namespace_keeps_its_rule():
    theirs = Owner("4026532999", 12, "5")
    text = listing(owned(8081, theirs))
    assert stale_port_rules(text, HUB.pidns, alive=lambda o: False, listening=set()) == []


def test_an_old_rule_without_owner_goes_only_when_nothing_listens_on_its_port():
    text = listing("8081 -j ACCEPT", "42123 -j ACCEPT")
    stale = stale_port_rules(text, HUB.pidns, alive=lambda o: True, listening={8081})
    assert [r[r.index("--dport") + 1] for r in stale] == ["42123"]


def test_dns_the_reject_and_an_admins_commented_rule_are_never_stale():
    text = listing('9000 -m comment --comment "grafana for the admins" -j ACCEPT')
    assert stale_port_rules(text, HUB.pidns, alive=lambda o: False, listening=set()) == []


def test_listening_ports_come_from_the_kernels_tcp_tables():
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000\n"  # 127.0.0.1:8081 LISTEN
        "   1: 0100007F:A4EB 0100007F:1F91 01 00000000:00000000\n"  # an established one
    )
    tcp6 = (
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A\n"
    )
    assert listening_tcp_ports([tcp, tcp6]) == {8081, 22}
