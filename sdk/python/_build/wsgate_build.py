"""An in-tree PEP 517 build backend for wsgate-producer, standard library only.

Why: the SDK is pure Python with no dependencies, and `pip install ./sdk/python`
must work in a fresh virtual environment with no package index. setuptools,
flit or hatchling would have to be downloaded first; this backend needs
nothing, because pip loads it from the source tree (backend-path in
pyproject.toml) and it asks for no build requirements.

It builds a py3-none-any wheel, an sdist, and an editable wheel (PEP 660).
The metadata comes from pyproject.toml's [project] table; the version there
follows the daemon's (a test in the repository checks it).
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The SDK, and mod_pywebsocket and pywebsocket3: the import paths
# pywebsocket's handler files use (the original, and its maintained
# fork's), served by wsgate_producer.pywebsocket.
PACKAGES = ("wsgate_producer", "mod_pywebsocket", "pywebsocket3")


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11 and later

        return tomllib.loads(data.decode("utf-8"))["project"]
    except ImportError:
        # Python 3.9 and 3.10: the few flat keys this backend reads.
        text = data.decode("utf-8")
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        out = {}
        for key in ("name", "version", "description", "requires-python"):
            m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), section, re.M)
            if m:
                out[key] = m.group(1)
        m = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]*)"', section, re.M)
        if m:
            out["license"] = {"text": m.group(1)}
        out["classifiers"] = re.findall(r'^\s*"([^"]+ :: [^"]+)",?\s*$', section, re.M)
        return out


def _dist_name(p):
    return re.sub(r"[-_.]+", "_", p["name"]).lower()


def _metadata(p):
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + p["name"],
        "Version: " + p["version"],
        "Summary: " + p.get("description", ""),
    ]
    if "requires-python" in p:
        lines.append("Requires-Python: " + p["requires-python"])
    lic = p.get("license", {})
    if isinstance(lic, dict) and "text" in lic:
        lines.append("License: " + lic["text"])
    for c in p.get("classifiers", []):
        lines.append("Classifier: " + c)
    lines.append("Description-Content-Type: text/markdown")
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return "\n".join(lines) + "\n\n" + readme


def _sources():
    for package in PACKAGES:
        for root, dirs, files in os.walk(os.path.join(HERE, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    yield path, os.path.relpath(path, HERE).replace(os.sep, "/")


class _Wheel:
    """A wheel being written: every file is hashed into RECORD."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.record = []

    def add(self, arcname, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        # A fixed date keeps the wheel reproducible.
        info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.record.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))

    def close(self, dist_info):
        record = dist_info + "/RECORD"
        self.record.append(record + ",,")
        info = zipfile.ZipInfo(record, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, "\n".join(self.record) + "\n")
        self.zip.close()


def _build(wheel_directory, editable):
    p = _project()
    name = "%s-%s" % (_dist_name(p), p["version"])
    filename = name + "-py3-none-any.whl"
    dist_info = name + ".dist-info"
    w = _Wheel(os.path.join(wheel_directory, filename))
    if editable:
        w.add(_dist_name(p) + ".pth", HERE + "\n")
    else:
        for path, arcname in _sources():
            with open(path, "rb") as f:
                w.add(arcname, f.read())
    w.add(dist_info + "/METADATA", _metadata(p))
    w.add(dist_info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: wsgate_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    w.add(dist_info + "/top_level.txt", "".join(p + "\n" for p in PACKAGES))
    w.close(dist_info)
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    name = "%s-%s" % (_dist_name(p), p["version"])
    filename = name + ".tar.gz"
    files = [(os.path.join(HERE, f), f) for f in ("pyproject.toml", "README.md", "_build/wsgate_build.py")]
    files += list(_sources())
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in files:
            info = tar.gettarinfo(path, name + "/" + arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 1577836800
            with open(path, "rb") as f:
                tar.addfile(info, f)
        pkg_info = _metadata(p).encode("utf-8")
        info = tarfile.TarInfo(name + "/PKG-INFO")
        info.size = len(pkg_info)
        info.mtime = 1577836800
        tar.addfile(info, io.BytesIO(pkg_info))
    return filename
