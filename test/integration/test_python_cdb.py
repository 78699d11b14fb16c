# SPDX-License-Identifier: MIT
"""halo.component's configuration database (get, list, transactions, subscriptions), the exceptions of
callbacks, and its argument checks, from this process against a real halod (docs/python.md)."""
import asyncio
import errno
import gc
import os
import select
import sys
import threading
import time

import pytest

from halo_harness import BUILD, cdb_only_yaml

sys.path.insert(0, os.path.join(BUILD, "src", "python"))
from halo import component as hc  # noqa: E402


@pytest.fixture
def halod(halod_factory):
    h = halod_factory(cdb_only_yaml("pycdb"), name="pycdb").start()
    yield h
    assert h.stop() == 0


@pytest.fixture
def handle(halod):
    with hc.open(halod.socket) as h:
        yield h


def dispatch_until(h, pred, timeout=10):
    """Dispatches as a component's loop does (select on fileno()) until pred() holds; a callback's
    exception leaves it."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for callbacks"
        if select.select([h.fileno()], [], [], 0.1)[0]:
            h.dispatch()


def test_get_list_and_a_committed_transaction(handle, halod):
    with handle.cdb_transaction() as t:
        t.set("/app/name", "pycdb")  # str is stored as UTF-8
        t.set("/app/blob", b"\x00\xff")
        t.set("/app/gone", "x")
        t.delete("/app/gone")
    assert t.txid.endswith("@local")
    assert handle.cdb_get("/app/name") == b"pycdb"
    assert handle.cdb_list("/app") == [("/app/blob", b"\x00\xff"), ("/app/name", b"pycdb")]
    # What the Python side wrote is what an operator reads.
    assert halod.ctl("cdb", "get", "/app/name").stdout == "pycdb\n"
    with pytest.raises(hc.Error) as e:
        handle.cdb_get("/app/gone")
    assert (e.value.code, e.value.errno, e.value.function) == (-errno.ENOENT, errno.ENOENT, "cdb_get")
    assert str(e.value) == "cdb_get: No such file or directory (-2)"
    assert handle.cdb_get("/app/gone", None) is None
    assert handle.cdb_get("/app/gone", default=b"0") == b"0"
    # An explicit commit returns the id; the transaction is then over.
    t = handle.cdb_transaction()
    t.set("/app/n", "1")
    txid = t.commit()
    assert txid == t.txid and txid != None  # noqa: E711
    with pytest.raises(ValueError, match="already committed or aborted"):
        t.set("/app/n", "2")


def test_a_transaction_whose_block_raises_is_aborted(handle, halod):
    with pytest.raises(KeyError):
        with handle.cdb_transaction() as t:
            t.set("/app/half", "written")
            raise KeyError("boom")
    assert t.txid is None
    assert handle.cdb_get("/app/half", None) is None
    assert halod.ctl("cdb", "get", "/app/half", check=False).returncode != 0
    t = handle.cdb_transaction()
    t.set("/app/half", "dropped")
    t.abort()
    assert handle.cdb_get("/app/half", None) is None
    with handle.cdb_transaction():  # an empty block commits nothing, and is no error
        pass


def test_subscribe_delivers_commits_from_dispatch_and_unsubscribe_ends_it(handle, halod):
    got = []
    sub = handle.cdb_subscribe("/watched", lambda h, s, txid, changes: got.append((h, s, txid, changes)))
    halod.ctl("cdb", "set", "/watched/a", "1", "/other/b", "2")
    halod.ctl("cdb", "delete", "/watched/a")
    dispatch_until(handle, lambda: len(got) == 2)
    (h, s, txid, changes), (_, _, _, deleted) = got
    assert h is handle and s == sub and txid.endswith("@local")
    assert [tuple(c) for c in changes] == [(hc.CDB_SET, "/watched/a", b"1")]  # not /other/b
    assert (changes[0].op, changes[0].path, changes[0].value) == (hc.CDB_SET, "/watched/a", b"1")
    assert [tuple(c) for c in deleted] == [(hc.CDB_DELETE, "/watched/a", None)]
    handle.cdb_unsubscribe(sub)
    with pytest.raises(hc.Error) as e:
        handle.cdb_unsubscribe(sub)
    assert e.value.code == -errno.ENOENT
    halod.ctl("cdb", "set", "/watched/a", "3")
    # Later commits no longer reach the callback (a second, live subscription proves they were delivered).
    seen = []
    handle.cdb_subscribe("/watched", lambda *a: seen.append(a))
    halod.ctl("cdb", "set", "/watched/a", "4")
    dispatch_until(handle, lambda: seen)
    assert len(got) == 2


def test_an_exception_in_a_callback_propagates_out_of_dispatch(handle, halod):
    calls = []

    def bad(h, sub, txid, changes):
        calls.append(changes[0].path)
        raise ZeroDivisionError(f"bad callback for {changes[0].path}")

    handle.cdb_subscribe("/x", bad)
    halod.ctl("cdb", "set", "/x/1", "a")
    with pytest.raises(ZeroDivisionError, match="bad callback for /x/1") as e:
        dispatch_until(handle, lambda: False)
    assert e.value.__traceback__.tb_next is not None  # the callback's frame is in the traceback
    # Two callbacks that raise: each exception leaves a dispatch(), or, when both ran in the same
    # dispatch(), the first does and the second goes to sys.unraisablehook: none is lost.
    handle.cdb_subscribe("/x", bad)  # a second subscription: one commit, two callbacks
    unraisable, raised = [], []
    old, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        halod.ctl("cdb", "set", "/x/2", "b")
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline, calls
            select.select([handle.fileno()], [], [], 0.1)
            try:
                handle.dispatch()
            except ZeroDivisionError as ex:
                raised.append(str(ex))
    finally:
        sys.unraisablehook = old
    assert calls == ["/x/1", "/x/2", "/x/2"]
    assert raised[0] == "bad callback for /x/2"
    assert raised[1:] + [str(u.exc_value) for u in unraisable] == ["bad callback for /x/2"]
    # A callback that closes the handle ends dispatch() normally; later calls say the handle is closed.
    handle.cdb_subscribe("/y", lambda h, *a: h.close())
    halod.ctl("cdb", "set", "/y/1", "a")
    select.select([handle.fileno()], [], [], 10)
    assert handle.dispatch() == 1
    with pytest.raises(ValueError, match="the handle is closed"):
        handle.fileno()


def test_blocking_dispatch_in_a_thread_releases_the_gil_and_ends_on_close(handle, halod):
    got = []

    def changed(h, sub, txid, changes):
        got.append(changes[0].value)
        if len(got) == 2:
            h.close()  # ends the blocking dispatch()

    handle.cdb_subscribe("/t", changed)
    out = []
    th = threading.Thread(target=lambda: out.append(handle.dispatch(hc.DISPATCH_BLOCKING)))
    th.start()
    # The thread sits in poll() without the GIL: this thread's calls on the same handle go on.
    for v in ("1", "2"):
        with handle.cdb_transaction() as t:
            t.set("/t/v", v)
    th.join(10)
    assert not th.is_alive() and got == [b"1", b"2"] and out == [2]


def test_close_from_another_thread_ends_a_blocking_dispatch(halod):
    h = hc.open(halod.socket)
    out = []
    th = threading.Thread(target=lambda: out.append(h.dispatch(hc.DISPATCH_BLOCKING)))
    th.start()
    wait_for_thread_in_poll = time.monotonic() + 0.2
    while time.monotonic() < wait_for_thread_in_poll:  # either way: before or in its poll()
        time.sleep(0.01)
    h.close()
    th.join(10)
    assert not th.is_alive() and out == [0]
    with pytest.raises(ValueError, match="the handle is closed"):
        h.cdb_get("/a")


def test_asyncio_reads_the_handle_with_add_reader(handle, halod):
    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        handle.cdb_subscribe("/aio", lambda h, sub, txid, changes: done.done() or done.set_result(changes[0].value))
        loop.add_reader(handle.fileno(), handle.dispatch)
        await loop.run_in_executor(None, lambda: halod.ctl("cdb", "set", "/aio/k", "from haloctl"))
        try:
            return await asyncio.wait_for(done, 10)
        finally:
            loop.remove_reader(handle.fileno())
    assert asyncio.run(main()) == b"from haloctl"


def test_a_transaction_outlives_its_closed_handle(halod):
    h = hc.open(halod.socket)
    t = h.cdb_transaction()
    t.set("/late/k", "v")
    h.close()
    del h
    with pytest.raises(ValueError, match="the handle is closed"):
        t.commit()
    with pytest.raises(ValueError, match="already committed or aborted"):
        t.commit()


def test_an_exception_leaves_a_blocking_dispatch(handle, halod):
    def bad(h, *a):
        raise LookupError("from the callback")

    handle.cdb_subscribe("/b", bad)
    halod.ctl("cdb", "set", "/b/1", "x")
    with pytest.raises(LookupError, match="from the callback"):
        handle.dispatch(hc.DISPATCH_BLOCKING)


def test_bad_arguments_raise_typeerror_or_valueerror_with_clear_messages(handle):
    with pytest.raises(TypeError, match="csi_set must be callable, not int"):
        hc.open(csi_set=1)
    with pytest.raises(TypeError):
        hc.open(3)
    with pytest.raises(hc.Error) as e:
        hc.open("/nonexistent/halod.sock")
    assert e.value.code == -errno.ENOENT and e.value.function == "open"
    with pytest.raises(ValueError, match="needs the csi_set and terminate callbacks"):
        handle.register("x")
    with pytest.raises(ValueError, match="invocation must be a positive int"):
        handle.response(0)
    with pytest.raises(TypeError, match="invocation must be an int, not str"):
        handle.response("1")
    with pytest.raises(ValueError, match="error must be 0 or a negative errno"):
        handle.response(5, 3)
    with pytest.raises(ValueError, match="recovery must be one of the RECOVERY_"):
        handle.error_report(99)
    with pytest.raises(ValueError, match="invoked must be HC_AMF_INVOKED or HC_COMPONENT_INVOKED"):
        handle.healthcheck_start("k", 7)
    with pytest.raises(ValueError, match="open\\(\\) was given no pg_track callback"):
        handle.pg_track("csi")
    with pytest.raises(ValueError, match="flags must be DISPATCH_ONE"):
        handle.dispatch(9)
    with pytest.raises(ValueError, match="give 1 to 256 objects, not 0"):
        handle.object_state_get([])
    with pytest.raises(TypeError, match=r"objects\[1\] must be a str, not int"):
        handle.object_state_get(["node:local", 5])
    with pytest.raises(TypeError, match="not a str"):
        handle.object_state_get("node:local")
    with pytest.raises(TypeError, match="value must be bytes or str, not int"):
        handle.cdb_transaction().set("/a", 1)
    with pytest.raises(ValueError, match="bad path 'a/'"):
        handle.cdb_transaction().set("a/", "v")
    with pytest.raises(TypeError, match="callback must be callable"):
        handle.cdb_subscribe("/a", None)
    # A call halod refuses raises Error with libhalo's code and text.
    with pytest.raises(hc.Error) as e:
        handle.response(12345)
    assert e.value.code == -hc.EBADINVOCATION and "unknown or already answered invocation" in str(e.value)
    # What an unregistered handle may ask: where the cluster is, and object states.
    ep = handle.entrypoint()
    assert ep["coordinator"] == "local" and ep["entrypoints"] == []
    (st,) = handle.object_state_get(["process:nothing"])
    assert isinstance(st, hc.ObjectState) and (st.object, st.state, st.hlc) == ("process:nothing", "", 0)


def test_handles_and_transactions_are_freed(halod):
    """No reference is leaked by a round of calls: the objects made are freed (gc and refcounts)."""
    def round_trip():
        got = []
        with hc.open(halod.socket, link_state=lambda *a: None) as h:
            h.cdb_subscribe("/r", lambda *a: got.append(a))
            with h.cdb_transaction() as t:
                t.set("/r/k", "v")
            dispatch_until(h, lambda: got)
            h.cdb_list("/r")
            h.cdb_get("/r/k")
        return h, t
    def handles():
        return len([o for o in gc.get_objects() if isinstance(o, hc.Handle)])
    round_trip()
    gc.collect()
    before, before_handles = len(gc.get_objects()), handles()
    for _ in range(20):
        h, t = round_trip()
        assert sys.getrefcount(t) == 2  # t and getrefcount's argument: nothing else holds it
        del h, t
    gc.collect()
    # The handles (in a cycle through their subscription's callback) are collected, transactions with them.
    assert handles() == before_handles
    assert len(gc.get_objects()) - before < 20
