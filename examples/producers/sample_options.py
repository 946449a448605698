"""ouistiti's sample-server options for the Python example producers:
-R <docroot> -n <name> -u <user> -m <max clients>. Also makes the SDK in
sdk/python importable when it is not installed."""
import argparse
import os
import pwd
import sys

try:
    import wsgate_producer  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))


def parse(description, default_name):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-R", dest="root", default="/var/run/websocket", help="directory of the socket")
    ap.add_argument("-n", dest="name", default=default_name, help="socket name in the directory")
    ap.add_argument("-u", dest="user", default="", help="user to run as once the socket is open")
    ap.add_argument("-m", dest="max_clients", type=int, default=50, help="maximum clients (more get 503)")
    ap.add_argument("--takeover", "-takeover", action="store_true",
                    help="take over a running instance's socket; it hands its clients over and exits")
    opts = ap.parse_args()
    opts.socket = os.path.join(opts.root, opts.name)
    return opts


def drop_privileges(user):
    if not user:
        return
    pw = pwd.getpwnam(user)
    os.setgroups([pw.pw_gid])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
