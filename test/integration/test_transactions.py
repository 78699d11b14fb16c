# SPDX-License-Identifier: MIT
"""Transactions across participants (issue 17, point 5; docs/transactions.md): a two-phase commit
over components, coordinated by halod with its log in the store, so that every participant applies
it or every one rolls back, whatever is SIGKILLed at whatever step."""
import json
import os
import re
import signal
import subprocess

import pytest
from etcd_harness import Etcd, LateWatchProxy
from halo_harness import BUILD, start_nodes, wait_for

TXNCOMP = os.path.join(BUILD, "test", "txncomp")


def yaml(tmp, env_b="", nodes=None, cluster="test", spare=()):
    """Units a and b of a 2N group (on one node, or each on nodes[unit]; spare: nodes with no unit)."""
    where = (lambda u: f"node: {nodes[u]}, ") if nodes else (lambda u: "")
    names = sorted(set(nodes.values()) | set(spare)) if nodes else []
    head = f"cluster: {cluster}\nnodes:\n" + "".join(f"  {n}: {{}}\n" for n in names) if nodes else ""
    units = "".join(
        f"      {u}: {{{where(u)}component: {{env: {{TXNCOMP_FILE: {tmp}/{u}.state{env_b if u == 'b' else ''}}}}}}}\n"
        for u in ("a", "b"))
    return f"""{head}
service-groups:
  g:
    redundancy: 2N
    component:
      command: {TXNCOMP}
    service-units:
{units}    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""


def state(tmp, unit):
    try:
        with open(f"{tmp}/{unit}.state") as f:
            return f.read()
    except OSError:
        return ""


def outcome(tmp, unit, txid):
    """'commit DATA', 'abort' or None: what the unit's component applied of txid."""
    m = re.search(rf"^(commit|abort) {re.escape(txid)}( .*)?$", state(tmp, unit), re.M)
    return m and (m[1] + (m[2] or ""))


def initiator(h, *args):
    env = dict(os.environ, HALO_SOCKET=h.socket)
    return subprocess.Popen([TXNCOMP, "commit", *args], env=env, stdout=subprocess.PIPE, text=True)


def commit(h, *args, timeout=30):
    p = initiator(h, *args)
    out, _ = p.communicate(timeout=timeout)
    return out


def txid_of(p):
    line = p.stdout.readline()
    assert line.startswith("txid "), line
    return line.split()[1]


def outcome_of(h, txid):
    """What halo_txn_outcome() answers on h's node: "committed ID", "aborted ID: REASON", ..."""
    env = dict(os.environ, HALO_SOCKET=h.socket)
    return subprocess.run([TXNCOMP, "outcome", txid], env=env, capture_output=True, text=True, timeout=10).stdout


def in_flight(h):
    return h.ctl("txn").stdout


def ready(h):
    h.wait_assigned("s")
    wait_for(lambda: all(h.comp(c)["registered"] for c in ("a", "b")), what="a and b registered")


def restart(h, mark_env=None):
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    h.wrapper = []
    h.start()


def test_commit_with_two_participants_is_applied_by_both(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path)).start()
    ready(h)
    out = commit(h, "5000", "a=apple", "b=banana")
    txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", out)[1]
    wait_for(lambda: outcome(tmp_path, "a", txid) == "commit apple" and outcome(tmp_path, "b", txid) == "commit banana",
             what="both applied")
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")
    assert "No transaction in flight" in in_flight(h)
    assert json.loads(h.ctl("txn", "--json").stdout) == []


def test_one_no_vote_rolls_back_both(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path, ", TXNCOMP_VOTE: no")).start()
    ready(h)
    out = commit(h, "5000", "a=apple", "b=banana")
    txid = re.fullmatch(r"txid (\S+)\naborted \1: b voted no.*\n", out)[1]
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort", what="a rolled back")
    assert f"vote {txid} yes" in state(tmp_path, "a") and f"vote {txid} no" in state(tmp_path, "b")
    assert outcome(tmp_path, "b", txid) is None  # a no voter prepared nothing
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")


def test_bad_input_is_refused_with_a_clear_error(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path, ", TXNCOMP_SLOW: prepare")).start()
    ready(h)
    assert "error: commit: no such object in the cluster model" in commit(h, "5000", "a=x", "nobody=y")
    assert "error: add: Message too long" in commit(h, "5000", "a=@20000")
    assert "error: commit: Invalid argument" in commit(h, "5", "a=x")  # a timeout below 100 ms
    # b takes its time to vote: meanwhile, a process that is not b votes in its name.
    p = initiator(h, "2000", "a=x", "b=y")
    txid = txid_of(p)
    wait_for(lambda: f"slow-prepare {txid}" in state(tmp_path, "b"), what="b asked")
    liar = subprocess.run([TXNCOMP, "vote", txid], env=dict(os.environ, HALO_SOCKET=h.socket),
                          capture_output=True, text=True, timeout=10)
    assert liar.stdout == "error: vote: component is not registered\n"
    assert "is not a participant of transaction" in h.logtext()
    # b never answers: the prepare timeout aborts.
    out, _ = p.communicate(timeout=20)
    assert out == f"aborted {txid}: prepare timeout: b did not vote\n"
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort", what="a rolled back")
    # halod serves on.
    assert h.status()


def kill_coordinator_at(halod_factory, tmp_path, step):
    """Starts a transaction whose halod stops after step, SIGKILLs halod there and starts it again.
    Returns (halod, txid)."""
    h = halod_factory(yaml(tmp_path), wrapper=("env", f"HALO_TEST_TXN_HOLD={step}")).start()
    ready(h)
    p = initiator(h, "5000", "a=apple", "b=banana")
    txid = txid_of(p)
    if step == "record":
        wait_for(lambda: txid in in_flight(h), what="the record")
    elif step == "votes":
        wait_for(lambda: all(f"vote {txid} yes" in state(tmp_path, u) for u in "ab"), what="both votes")
        wait_for(lambda: in_flight(h).count("yes") == 2, what="the votes in the store")
    else:
        wait_for(lambda: "committing" in in_flight(h), what="the decision")
    restart(h)
    assert p.wait(timeout=10) == 1  # its link ended: the outcome is unknown to it
    return h, txid


def test_coordinator_killed_after_the_record_aborts(halod_factory, tmp_path):
    h, txid = kill_coordinator_at(halod_factory, tmp_path, "record")
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")
    assert "its coordinator restarted before a decision" in h.logtext()
    assert not re.search(rf"(prepare|commit) {txid}", state(tmp_path, "a") + state(tmp_path, "b"))


def test_coordinator_killed_after_the_votes_rolls_back_both(halod_factory, tmp_path):
    h, txid = kill_coordinator_at(halod_factory, tmp_path, "votes")
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort" and outcome(tmp_path, "b", txid) == "abort",
             what="both rolled back")
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")


def test_coordinator_killed_after_the_decision_commits_both(halod_factory, tmp_path):
    h, txid = kill_coordinator_at(halod_factory, tmp_path, "decision")
    assert outcome(tmp_path, "a", txid) is None and outcome(tmp_path, "b", txid) is None
    wait_for(lambda: outcome(tmp_path, "a", txid) == "commit apple" and outcome(tmp_path, "b", txid) == "commit banana",
             what="both applied")
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")


def test_participant_killed_before_its_vote_aborts(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path, ", TXNCOMP_SLOW: prepare")).start()
    ready(h)
    p = initiator(h, "30000", "a=apple", "b=banana")
    txid = txid_of(p)
    wait_for(lambda: f"slow-prepare {txid}" in state(tmp_path, "b"), what="b asked")
    os.kill(h.pid_of("b"), signal.SIGKILL)
    out, _ = p.communicate(timeout=20)
    assert out == f"aborted {txid}: b ended before it voted: its process ended before it voted\n"
    # a rolls back; b, restarted, hears the abort of what it may have prepared.
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort" and outcome(tmp_path, "b", txid) == "abort",
             timeout=20, what="both rolled back")
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")


def test_participant_killed_after_its_yes_vote_applies_the_commit_when_back(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path, ", TXNCOMP_SLOW: outcome")).start()
    ready(h)
    out = commit(h, "5000", "a=apple", "b=banana")
    txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", out)[1]
    wait_for(lambda: f"slow-outcome {txid}" in state(tmp_path, "b"), what="b told")
    pid = h.pid_of("b")
    os.kill(pid, signal.SIGKILL)
    assert outcome(tmp_path, "b", txid) is None
    wait_for(lambda: outcome(tmp_path, "b", txid) == "commit banana", timeout=20, what="b, restarted, applied")
    assert outcome(tmp_path, "a", txid) == "commit apple"
    wait_for(lambda: txid not in in_flight(h), what="the transaction finished")


def test_an_initiator_killed_mid_commit_asks_the_outcome_by_its_id(halod_factory, tmp_path):
    """The initiator is SIGKILLed while b prepares; another process asks the outcome by the txid:
    undecided, then aborted once an operator aborts it, and still so after it finished."""
    h = halod_factory(yaml(tmp_path, ", TXNCOMP_SLOW: prepare")).start()
    ready(h)
    p = initiator(h, "30000", "a=apple", "b=banana")
    txid = txid_of(p)
    wait_for(lambda: f"slow-prepare {txid}" in state(tmp_path, "b"), what="b asked")
    p.kill()
    p.wait()
    assert outcome_of(h, txid) == f"undecided {txid}\n"
    r = h.ctl("txn", "forget", txid, check=False)  # an operator cannot forget what is not decided
    assert r.returncode == 5 and "not decided yet" in r.stderr
    assert h.ctl("txn", "abort", txid).stdout == f"Transaction {txid} aborted: see haloctl txn {txid}\n"
    reason = "aborted by an operator"
    assert outcome_of(h, txid) == f"aborted {txid}: {reason}\n"
    r = h.ctl("txn", "abort", txid, check=False)
    assert r.returncode == 5 and "decided already" in r.stderr
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort", what="a rolled back")
    # b, stuck in its prepare, is killed: restarted, it hears the abort.
    os.kill(h.pid_of("b"), signal.SIGKILL)
    wait_for(lambda: outcome(tmp_path, "b", txid) == "abort", timeout=20, what="b, restarted, rolled back")
    wait_for(lambda: "No transaction in flight" in in_flight(h), what="the transaction finished")
    # Finished: its outcome is kept.
    assert outcome_of(h, txid) == f"aborted {txid}: {reason}\n"
    assert re.match(rf"{re.escape(txid)} +aborted +finished \d+s ago  -- {reason}\n$", h.ctl("txn", txid).stdout)
    shown = json.loads(h.ctl("txn", txid, "--json").stdout)
    assert shown["state"] == "aborted" and shown["reason"] == reason and "unacked" not in shown
    r = h.ctl("txn", "nobody.1", check=False)
    assert r.returncode == 4 and "no such transaction" in r.stderr
    assert outcome_of(h, "nobody.1") == "unknown nobody.1\n"


def test_a_finished_outcome_is_kept_for_a_while_only(halod_factory, tmp_path):
    """HALO_TEST_TXN_KEEP_MSEC shortens the hour an outcome is kept: after it, it is unknown."""
    h = halod_factory(yaml(tmp_path), wrapper=("env", "HALO_TEST_TXN_KEEP_MSEC=4000")).start()
    ready(h)
    txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", commit(h, "5000", "a=apple", "b=banana"))[1]
    assert outcome_of(h, txid) == f"committed {txid}\n"
    wait_for(lambda: outcome_of(h, txid) == f"unknown {txid}\n", timeout=20, what="the outcome forgotten")
    assert h.ctl("txn", txid, check=False).returncode == 4


def test_participants_on_two_nodes_commit_and_roll_back_through_etcd(etcd, halod_factory, tmp_path):
    """a on n1, b on n2: each node's halod asks its own component, through the store's keys."""
    hs, _ = start_nodes(halod_factory, yaml(tmp_path, nodes={"a": "n1", "b": "n2"}), etcd.endpoints, ttl=2)
    hs["n1"].wait_assigned("s")
    wait_for(lambda: hs["n1"].comp("a")["registered"] and hs["n2"].comp("b")["registered"], what="a and b registered")
    out = commit(hs["n1"], "5000", "a=apple", "b=banana")
    txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", out)[1]
    wait_for(lambda: outcome(tmp_path, "a", txid) == "commit apple" and outcome(tmp_path, "b", txid) == "commit banana",
             what="both applied")
    assert f"Transaction {txid}: prepare sent to b" in hs["n2"].logtext()
    # Begun on n2 this time, with a participant that does not exist.
    assert "no such object in the cluster model" in commit(hs["n2"], "5000", "a=x", "c=y")
    wait_for(lambda: "No transaction in flight" in in_flight(hs["n1"]) and "No transaction" in in_flight(hs["n2"]),
             what="nothing in flight")


def test_a_dead_coordinator_node_leaves_its_transaction_to_the_cluster_coordinator(etcd, halod_factory, tmp_path):
    """n2 begins a transaction with a (on n1), stops after the votes, and dies whole: n1, the
    cluster's coordinator once n2's lease ends, aborts it and a rolls back."""
    text = yaml(tmp_path, nodes={"a": "n1", "b": "n2"})
    hs = {n: halod_factory(text, name=n, wrapper=("env", "HALO_TEST_TXN_HOLD=votes") if n == "n2" else (),
                           extra_args=["--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "2"]).start()
          for n in ("n1", "n2")}
    hs["n1"].wait_assigned("s")
    wait_for(lambda: hs["n1"].comp("a")["registered"], what="a registered")
    p = initiator(hs["n2"], "30000", "a=apple")
    txid = txid_of(p)
    wait_for(lambda: f"vote {txid} yes" in state(tmp_path, "a"), what="a's vote")
    hs["n2"].kill_all()
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort", timeout=20, what="a rolled back")
    assert f"Transaction {txid}: abort: its coordinator node is gone (presumed abort)" in hs["n1"].logtext()
    wait_for(lambda: txid not in in_flight(hs["n1"]), what="the transaction finished")


# ---- several nodes over etcd: the coordinator's node and each participant's node killed ---------
#
# n1 coordinates (the initiator asks it) and runs no participant; a runs on n2, b on n3.  Each
# step's test has a cluster of its own in one etcd.


@pytest.fixture(scope="module")
def shared_etcd():
    e = Etcd(members=1).start()
    yield e
    e.stop()


def three_nodes(halod_factory, tmp_path, etcd, cluster, env_b="", hold=None, endpoints=None):
    """n1, n2 (a), n3 (b) over etcd; hold: {node: step} for HALO_TEST_TXN_HOLD; endpoints: {node:
    its --etcd} where not etcd's own.  Leases of 2 s (as every etcd test here): 1 s ones lapse on a
    loaded machine, the node is fenced, and libhalo stops the processes of its halod (an
    initiator among them)."""
    text = yaml(tmp_path, env_b, nodes={"a": "n2", "b": "n3"}, cluster=cluster, spare=("n1",))
    hold, endpoints = hold or {}, endpoints or {}
    hs = {n: halod_factory(text, name=n, wrapper=("env", f"HALO_TEST_TXN_HOLD={hold[n]}") if n in hold else (),
                           extra_args=["--node", n, "--etcd", endpoints.get(n, etcd.endpoints), "--lease-ttl",
                                       "2"]).start()
          for n in ("n1", "n2", "n3")}
    hs["n1"].wait_assigned("s")
    wait_for(lambda: hs["n2"].comp("a")["registered"] and hs["n3"].comp("b")["registered"], what="a and b registered")
    return hs


def kill_node(h):
    """SIGKILL of a node: its halod and its components."""
    h.kill_all()
    h.log.close()


def restart_node(h):
    h.wrapper = []
    h.start()


def none_in_flight(hs, txid):
    wait_for(lambda: all(txid not in in_flight(h) for h in hs.values()), timeout=20, what="nothing in flight")


def test_a_vote_before_the_participants_halod_sees_its_own_pending_write_counts(shared_etcd, halod_factory,
                                                                                tmp_path):
    """b's halod (n3) learns of the store's changes 0.4 s late (a proxy holds its watches back),
    the answers to its writes at once: b, asked once its pending vote is written, votes long
    before that halod's watch brings the pending vote back. The vote counts: both commit (it was
    refused, and the transaction aborted at its prepare timeout, 1 in about 40 CI runs)."""
    proxy = LateWatchProxy(shared_etcd.members[0]["client"], 0.4)
    try:
        hs = three_nodes(halod_factory, tmp_path, shared_etcd, "late-watch", endpoints={"n3": proxy.endpoint})
        assert proxy.watches > 0
        out = commit(hs["n1"], "5000", "a=apple", "b=banana")
        txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", out or "")
        assert txid, out
        wait_for(lambda: outcome(tmp_path, "a", txid[1]) == "commit apple" and
                 outcome(tmp_path, "b", txid[1]) == "commit banana", what="both applied")
        none_in_flight(hs, txid[1])
    finally:
        proxy.close()


@pytest.mark.parametrize("step", ["record", "votes", "decision"])
def test_over_etcd_the_coordinator_node_killed_at_each_step(shared_etcd, halod_factory, tmp_path, step):
    """After the record or the votes, the transaction aborts (presumed abort: the cluster's
    coordinator takes it over once n1's lease ends); after the commit decision, both apply it.
    Participants' halods hold after the record too in that case, so that nobody prepares."""
    hold = {"n1": step, "n2": "record", "n3": "record"} if step == "record" else {"n1": step}
    hs = three_nodes(halod_factory, tmp_path, shared_etcd, f"coord-{step}", hold=hold)
    p = initiator(hs["n1"], "30000", "a=apple", "b=banana")
    txid = txid_of(p)
    if step == "record":
        wait_for(lambda: txid in in_flight(hs["n2"]) and txid in in_flight(hs["n3"]), what="the record")
    elif step == "votes":
        wait_for(lambda: in_flight(hs["n2"]).count("yes") == 2, what="both votes in the store")
    else:
        wait_for(lambda: "committing" in in_flight(hs["n2"]), what="the decision")
    kill_node(hs["n1"])
    assert p.wait(timeout=10) == 1  # its link ended: the outcome is unknown to it
    if step == "decision":
        wait_for(lambda: outcome(tmp_path, "a", txid) == "commit apple" and
                 outcome(tmp_path, "b", txid) == "commit banana", timeout=20, what="both applied")
    else:
        # Nothing is owed to a participant that was never asked: its file has no line of txid.
        want = "abort" if step == "votes" else None
        wait_for(lambda: txid not in in_flight(hs["n2"]), timeout=20, what="the transaction finished")
        assert outcome(tmp_path, "a", txid) == want and outcome(tmp_path, "b", txid) == want
        assert "its coordinator node is gone (presumed abort)" in hs["n2"].logtext() + hs["n3"].logtext()
    restart_node(hs["n1"])
    none_in_flight(hs, txid)
    # The initiator's link ended: any node tells the outcome.
    assert outcome_of(hs["n3"], txid) == (f"committed {txid}\n" if step == "decision" else
                                          f"aborted {txid}: its coordinator node is gone (presumed abort)\n")
    assert not re.search(rf"(commit|abort) {txid}.*\n.*(commit|abort) {txid}", state(tmp_path, "a")), "applied twice"


def test_over_etcd_a_participant_node_killed_before_its_vote_aborts(shared_etcd, halod_factory, tmp_path):
    """b's node dies while b prepares: nobody votes for it, the prepare timeout aborts, a rolls
    back at once and b when its node is back."""
    hs = three_nodes(halod_factory, tmp_path, shared_etcd, "part-before", env_b=", TXNCOMP_SLOW: prepare")
    p = initiator(hs["n1"], "3000", "a=apple", "b=banana")
    txid = txid_of(p)
    wait_for(lambda: f"slow-prepare {txid}" in state(tmp_path, "b"), what="b asked")
    kill_node(hs["n3"])
    out, _ = p.communicate(timeout=20)
    assert out == f"aborted {txid}: prepare timeout: b did not vote\n"
    wait_for(lambda: outcome(tmp_path, "a", txid) == "abort", what="a rolled back")
    assert "aborting" in in_flight(hs["n1"])  # b owes an acknowledgement: it may have prepared
    restart_node(hs["n3"])
    wait_for(lambda: outcome(tmp_path, "b", txid) == "abort", timeout=20, what="b, back, rolled back")
    none_in_flight(hs, txid)


def participant_node_killed_after_its_yes_vote(halod_factory, tmp_path, etcd, cluster):
    """b votes yes, then its node dies before b hears the commit.  Returns (nodes, txid)."""
    hs = three_nodes(halod_factory, tmp_path, etcd, cluster, hold={"n3": "decision"})
    out = commit(hs["n1"], "5000", "a=apple", "b=banana")
    txid = re.fullmatch(r"txid (\S+)\ncommitted \1\n", out)[1]
    assert f"vote {txid} yes" in state(tmp_path, "b")
    wait_for(lambda: outcome(tmp_path, "a", txid) == "commit apple", what="a applied")
    kill_node(hs["n3"])
    assert outcome(tmp_path, "b", txid) is None
    wait_for(lambda: re.search(r"a=yes\+acked b=yes\n", in_flight(hs["n1"])), what="a acknowledged, b not")
    assert "committing" in in_flight(hs["n1"])
    return hs, txid


def test_over_etcd_a_participant_node_killed_after_its_yes_vote_applies_the_commit_when_back(
        shared_etcd, halod_factory, tmp_path):
    hs, txid = participant_node_killed_after_its_yes_vote(halod_factory, tmp_path, shared_etcd, "part-after")
    restart_node(hs["n3"])
    wait_for(lambda: outcome(tmp_path, "b", txid) == "commit banana", timeout=20, what="b, back, applied")
    none_in_flight(hs, txid)


def test_over_etcd_an_operator_forgets_what_a_participant_node_gone_for_good_never_acknowledged(
        shared_etcd, halod_factory, tmp_path):
    hs, txid = participant_node_killed_after_its_yes_vote(halod_factory, tmp_path, shared_etcd, "part-gone")
    assert "Transaction" in hs["n2"].ctl("txn", "forget", txid).stdout
    none_in_flight({n: hs[n] for n in ("n1", "n2")}, txid)
    shown = hs["n1"].ctl("txn", txid).stdout
    assert re.match(rf"{re.escape(txid)} +committed +finished \d+s ago\n  b did not hear it: forgotten by an operator\n$",
                    shown), shown
    assert json.loads(hs["n2"].ctl("txn", txid, "--json").stdout)["unacked"] == ["b"]
    assert outcome_of(hs["n1"], txid) == f"committed {txid}\n"
    assert f"Transaction {txid} forgotten by " in hs["n2"].logtext()
