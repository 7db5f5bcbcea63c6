"""Drives a running cluster with the official Pegasus Python client (pypegasus3 0.0.1.1),
unchanged. Usage: python test_pypegasus3.py META[,META...] TABLE

Prints one line per check ("ok <name>") and exits non-zero on the first failure."""

import sys
import time

from twisted.internet import reactor, defer
from twisted.internet.defer import inlineCallbacks

from pypegasus.pgclient import Pegasus
from pypegasus.utils.tools import ScanOptions, MultiGetOptions

RESULT = {"code": 1}
# Hash keys unique to this run, so reruns against the same cluster do not interfere.
RUN = str(int(time.time() * 1000)).encode()
MULTI = b"py_multi_" + RUN



def check(name, cond, detail=""):
    if not cond:
        raise AssertionError("%s failed: %r" % (name, detail))
    print("ok", name, flush=True)


def to_bytes(x):
    return x.encode() if isinstance(x, str) else x


def as_bytes(d):
    return {to_bytes(k): to_bytes(v) for k, v in d.items()}


def sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@inlineCallbacks
def run(metas, table):
    c = Pegasus(metas, table)
    ok = yield c.init()
    check("init", ok is True or ok, ok)

    r = yield c.set(b"py_hk", b"sk", b"v1")
    check("set", r[0] == 0, r)
    r = yield c.get(b"py_hk", b"sk")
    check("get", r == (0, b"v1"), r)
    r = yield c.exist(b"py_hk", b"sk")
    check("exist", r[0] == 0, r)
    r = yield c.ttl(b"py_hk", b"sk")
    check("ttl without ttl", r[0] == 0 and r[1] == -1, r)

    r = yield c.set(b"py_hk", b"ttl", b"t", ttl=100)
    check("set with ttl", r[0] == 0, r)
    r = yield c.ttl(b"py_hk", b"ttl")
    check("ttl", r[0] == 0 and 95 <= r[1] <= 100, r)

    r = yield c.remove(b"py_hk", b"sk")
    check("remove", r[0] == 0, r)
    r = yield c.get(b"py_hk", b"sk")
    check("get after remove", r[0] != 0 and not r[1], r)
    r = yield c.exist(b"py_hk", b"sk")
    check("exist after remove", r[0] != 0, r)

    # A value with a TTL expires.
    r = yield c.set(b"py_hk", b"short", b"s", ttl=1)
    check("set short ttl", r[0] == 0, r)
    yield sleep(2.2)
    r = yield c.get(b"py_hk", b"short")
    check("expired value is gone", r[0] != 0 and not r[1], r)

    # This client str()-converts the sort keys and values of dict/set arguments (a Python 2
    # heritage): pass str, compare as bytes.
    kvs = {"sk%02d" % i: "v%d" % i for i in range(20)}
    want = {k.encode(): v.encode() for k, v in kvs.items()}
    r = yield c.multi_set(MULTI, kvs)
    check("multi_set", r[0] == 0, r)
    r = yield c.sort_key_count(MULTI)
    check("sort_key_count", r == (0, 20), r)
    r = yield c.multi_get(MULTI, {"sk03", "sk07", "missing"})
    check("multi_get by keys", r[0] == 0 and as_bytes(r[1]) == {b"sk03": b"v3", b"sk07": b"v7"}, r)
    r = yield c.multi_get(MULTI, None)
    check("multi_get all", r[0] == 0 and as_bytes(r[1]) == want, r)
    opt = MultiGetOptions()
    opt.start_inclusive = True
    opt.stop_inclusive = False
    r = yield c.multi_get_opt(MULTI, b"sk05", b"sk10", opt)
    check("multi_get range", r[0] == 0 and sorted(as_bytes(r[1])) == [("sk%02d" % i).encode() for i in range(5, 10)], r)
    r = yield c.get_sort_keys(MULTI)
    check("get_sort_keys", r[0] == 0 and {to_bytes(k) for k in r[1]} == set(want), r)
    r = yield c.multi_del(MULTI, {"sk00", "sk01"})
    check("multi_del", r[0] == 0 and r[1] == 2, r)
    r = yield c.sort_key_count(MULTI)
    check("sort_key_count after multi_del", r == (0, 18), r)

    # An ordered scanner over one hash key.
    so = ScanOptions()
    so.batch_size = 5
    # An empty stop key crashes this client under Python 3 (its generate_next_bytes calls
    # ord() on an int), so scan up to b"\xff", past every sort key written here.
    s = c.get_scanner(MULTI, b"", b"\xff", so)
    seen = []
    while True:
        kv = yield s.get_next()
        if kv is None:
            break
        (hk, sk), v = kv
        hk, sk = to_bytes(hk), to_bytes(sk)
        check_hk = hk == MULTI
        if not check_hk:
            raise AssertionError("scanner returned hash key %r" % hk)
        seen.append(sk)
    s.close()
    check("get_scanner", seen == sorted(seen) and len(seen) == 18, seen)

    # Unordered scanners over the whole table see every hash key.
    for i in range(40):
        r = yield c.set(b"py_scan_" + RUN + (b"_%d" % i), b"s", b"x")
        if r[0] != 0:
            raise AssertionError("set py_scan_%d: %r" % (i, r))
    scanners = c.get_unordered_scanners(4, ScanOptions())
    found = set()
    for s in scanners:
        while True:
            kv = yield s.get_next()
            if kv is None:
                break
            (hk, sk), v = kv
            hk = to_bytes(hk)
            if hk.startswith(b"py_scan_" + RUN + b"_"):
                found.add(hk)
        s.close()
    check("unordered scanners", found == {b"py_scan_" + RUN + (b"_%d" % i) for i in range(40)}, len(found))

    c.close()
    RESULT["code"] = 0


def main():
    metas = sys.argv[1].split(",")
    table = sys.argv[2]

    def done(_):
        reactor.stop()

    def failed(f):
        print("FAILED:", f.getErrorMessage(), flush=True)
        f.printTraceback()
        reactor.stop()

    d = run(metas, table)
    d.addCallbacks(done, failed)
    reactor.callLater(120, lambda: (print("FAILED: timeout", flush=True), reactor.stop()))
    reactor.run()
    sys.exit(RESULT["code"])


if __name__ == "__main__":
    main()
