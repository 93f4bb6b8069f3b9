#!/usr/bin/python3
"""Regenerates tests/fuzz/seeds/pickle/ and seeds/zip/: small data.pkl files exactly as torch.save writes them.

Covers a plain dict, a module's OrderedDict with _metadata, views sharing a storage, a
_rebuild_parameter entry, protocol 4 and a cuda-tagged storage (retagged bytes: no GPU needed).
"""
import io
import os
import zipfile

import torch


def archive_bytes(obj, **save_options):
    buffer = io.BytesIO()
    torch.save(obj, buffer, **save_options)
    return buffer.getvalue()


def data_pkl(obj, **save_options):
    archive = zipfile.ZipFile(io.BytesIO(archive_bytes(obj, **save_options)))
    return archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))


def deflated(archive):
    """The same records re-zipped with deflate, as a user's zip tool might."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    return buffer.getvalue()


def main():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                              torch.nn.Linear(2, 2, bias=False))
    base = torch.arange(10.0)
    plain = data_pkl({"w": torch.zeros(2, 3), "n": torch.tensor(1), "h": torch.zeros(4).half(),
                      "d": torch.zeros(0, dtype=torch.float64)})
    cpu_tag = b"X\x03\x00\x00\x00cpu"
    seeds = {
        "plain_dict.pkl": plain,
        "module_ordered_dict.pkl": data_pkl(net.state_dict()),
        "shared_storage.pkl": data_pkl({"a": base[2:6].view(2, 2), "b": base.view(2, 5).t()}),
        "parameter.pkl": data_pkl({"p": torch.nn.Parameter(torch.zeros(2))}),
        "protocol4.pkl": data_pkl({"w": torch.zeros(2, 3), "b": torch.zeros(2, dtype=torch.bool)},
                                  pickle_protocol=4),
        "empty_dict.pkl": data_pkl({}),
        "cuda_tagged.pkl": plain.replace(cpu_tag, b"X\x06\x00\x00\x00cuda:0", 1),
    }
    module = archive_bytes(net.state_dict())
    archives = {
        "module.pth": module,
        "plain_dict.pth": archive_bytes({"w": torch.zeros(2, 3), "n": torch.tensor(1)}),
        "deflated_module.pth": deflated(module),
    }
    here = os.path.dirname(os.path.abspath(__file__))
    for folder, files in (("pickle", seeds), ("zip", archives)):
        out_dir = os.path.join(here, "seeds", folder)
        os.makedirs(out_dir, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
