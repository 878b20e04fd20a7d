"""Writes small CIFAR directories in the real on-disk formats, plus what Python reads back from them.

usage: write_cifar.py OUT

OUT/py2/   cifar-10-batches-py, cifar-100-python: pickles laid out as the official files (Python 2 cPickle,
           protocol 2: byte-string keys and payload, numpy.core.multiarray._reconstruct), written opcode by
           opcode because Python 3 cannot emit Python 2 strings.
OUT/py3/   the same dicts re-pickled by Python 3 with protocol 2 (bytes keys, as torchvision users may have).
OUT/bin/   cifar-10-batches-bin, cifar-100-binary: the binary version (label byte(s) + 3072 bytes per image).
OUT/expected/  {c10,c100}_{train,test}.{images,labels}, c100_*.coarse: raw bytes as torchvision reads the
           py2 files (pickle.load(f, encoding="latin1")), in file order.
"""
import os
import pickle
import struct
import sys

import numpy as np

C10_TRAIN_SIZES = [1003, 4, 2, 5, 3]  # one batch over 1000 labels: cPickle splits APPENDS every 1000
C10_TEST_SIZE = 4
C100_TRAIN_SIZE = 12
C100_TEST_SIZE = 5


class Py2Pickler:
    """The opcodes Python 2's cPickle (protocol 2) writes for the CIFAR dicts."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.memo += 1
        self.out += b"q" + bytes([self.memo]) if self.memo < 256 else b"r" + struct.pack("<I", self.memo)

    def string(self, s):
        s = s if isinstance(s, bytes) else s.encode("latin1")
        self.out += (b"U" + bytes([len(s)]) if len(s) < 256 else b"T" + struct.pack("<I", len(s))) + s
        self.put()

    def int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        else:
            self.out += b"J" + struct.pack("<i", v)

    def glob(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self.put()

    def value(self, v):
        if isinstance(v, (bytes, str)):
            self.string(v)
        elif isinstance(v, int):
            self.int(v)
        elif isinstance(v, list):
            self.out += b"]"
            self.put()
            for start in range(0, len(v), 1000):
                chunk = v[start:start + 1000]
                if len(chunk) == 1:
                    self.value(chunk[0])
                    self.out += b"a"
                else:
                    self.out += b"("
                    for item in chunk:
                        self.value(item)
                    self.out += b"e"
        elif isinstance(v, np.ndarray):
            self.array(v)
        else:
            raise TypeError(type(v))

    def array(self, a):
        assert a.dtype == np.uint8
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.glob("numpy", "ndarray")
        self.int(0)
        self.out += b"\x85"
        self.put()
        self.string(b"b")
        self.out += b"\x87"
        self.put()
        self.out += b"R"
        self.put()
        self.out += b"(" + b"K\x01"
        for d in a.shape:
            self.int(d)
        self.out += b"\x86"
        self.put()
        self.glob("numpy", "dtype")
        self.string(b"u1")
        self.int(0)
        self.int(1)
        self.out += b"\x87"
        self.put()
        self.out += b"R"
        self.put()
        self.out += b"(" + b"K\x03"
        self.string(b"|")
        self.out += b"NNN" + b"J\xff\xff\xff\xff" * 2 + b"K\x00" + b"t"
        self.put()
        self.out += b"b" + b"\x89"
        self.string(a.tobytes())
        self.out += b"t"
        self.put()
        self.out += b"b"

    def dump(self, d):
        self.out += b"}"
        self.put()
        self.out += b"("
        for k, v in d.items():
            self.string(k)
            self.value(v)
        self.out += b"u."
        return bytes(self.out)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def batch(rng, n, fine_classes, cifar100, name):
    images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    d = {"batch_label": name, "data": images}
    if cifar100:
        d["fine_labels"] = [int(x) for x in rng.integers(0, fine_classes, size=n)]
        d["coarse_labels"] = [int(x) for x in rng.integers(0, 20, size=n)]
    else:
        d["labels"] = [int(x) for x in rng.integers(0, fine_classes, size=n)]
    d["filenames"] = ["img_%s_%d.png" % (name.replace(" ", "_"), i) for i in range(n)]
    return d


def save_all(out, subdir, name, d, cifar100):
    with_bytes_keys = {k.encode(): (v.encode() if isinstance(v, str) else
                                    [x.encode() for x in v] if k == "filenames" else v) for k, v in d.items()}
    write(os.path.join(out, "py2", subdir, name), Py2Pickler().dump(d))
    write(os.path.join(out, "py3", subdir, name), pickle.dumps(with_bytes_keys, protocol=2))
    # Both spellings must read back identically in Python, the way torchvision reads them.
    for style in ("py2", "py3"):
        with open(os.path.join(out, style, subdir, name), "rb") as f:
            back = pickle.load(f, encoding="latin1")
        back = {(k.decode() if isinstance(k, bytes) else k): v for k, v in back.items()}
        assert np.array_equal(back["data"], d["data"]), (style, name)
        for key in ("labels", "fine_labels", "coarse_labels"):
            if key in d:
                assert back[key] == d[key], (style, name, key)
    return d


def records(d, cifar100):
    rows = []
    for i in range(len(d["data"])):
        head = [d["coarse_labels"][i], d["fine_labels"][i]] if cifar100 else [d["labels"][i]]
        rows.append(bytes(head) + d["data"][i].tobytes())
    return b"".join(rows)


def expected(out, stem, dicts, cifar100):
    # Read back from the py2 files as torchvision does, so the expectation comes from Python's unpickler.
    images = b"".join(d["data"].tobytes() for d in dicts)
    write(os.path.join(out, "expected", stem + ".images"), images)
    write(os.path.join(out, "expected", stem + ".labels"),
          bytes(sum((d["fine_labels" if cifar100 else "labels"] for d in dicts), [])))
    if cifar100:
        write(os.path.join(out, "expected", stem + ".coarse"), bytes(sum((d["coarse_labels"] for d in dicts), [])))


def read_py2(out, subdir, name):
    with open(os.path.join(out, "py2", subdir, name), "rb") as f:
        return pickle.load(f, encoding="latin1")


def main(out):
    rng = np.random.default_rng(0)
    c10_train = [batch(rng, n, 10, False, "training batch %d of 5" % (i + 1)) for i, n in enumerate(C10_TRAIN_SIZES)]
    c10_test = batch(rng, C10_TEST_SIZE, 10, False, "testing batch 1 of 1")
    for i, d in enumerate(c10_train):
        save_all(out, "cifar-10-batches-py", "data_batch_%d" % (i + 1), d, False)
    save_all(out, "cifar-10-batches-py", "test_batch", c10_test, False)
    meta = {"label_names": ["class%d" % i for i in range(10)], "num_cases_per_batch": 10000, "num_vis": 3072}
    for style in ("py2", "py3"):
        write(os.path.join(out, style, "cifar-10-batches-py", "batches.meta"), pickle.dumps(meta, protocol=2))
    bin10 = os.path.join(out, "bin", "cifar-10-batches-bin")
    for i, d in enumerate(c10_train):
        write(os.path.join(bin10, "data_batch_%d.bin" % (i + 1)), records(d, False))
    write(os.path.join(bin10, "test_batch.bin"), records(c10_test, False))
    write(os.path.join(bin10, "batches.meta.txt"), "".join("class%d\n" % i for i in range(10)).encode())
    expected(out, "c10_train", [read_py2(out, "cifar-10-batches-py", "data_batch_%d" % (i + 1)) for i in range(5)], False)
    expected(out, "c10_test", [read_py2(out, "cifar-10-batches-py", "test_batch")], False)

    c100_train = batch(rng, C100_TRAIN_SIZE, 100, True, "training batch 1 of 1")
    c100_test = batch(rng, C100_TEST_SIZE, 100, True, "testing batch 1 of 1")
    save_all(out, "cifar-100-python", "train", c100_train, True)
    save_all(out, "cifar-100-python", "test", c100_test, True)
    meta = {"fine_label_names": ["f%d" % i for i in range(100)], "coarse_label_names": ["c%d" % i for i in range(20)]}
    for style in ("py2", "py3"):
        write(os.path.join(out, style, "cifar-100-python", "meta"), pickle.dumps(meta, protocol=2))
    bin100 = os.path.join(out, "bin", "cifar-100-binary")
    write(os.path.join(bin100, "train.bin"), records(c100_train, True))
    write(os.path.join(bin100, "test.bin"), records(c100_test, True))
    expected(out, "c100_train", [read_py2(out, "cifar-100-python", "train")], True)
    expected(out, "c100_test", [read_py2(out, "cifar-100-python", "test")], True)


if __name__ == "__main__":
    main(sys.argv[1])
