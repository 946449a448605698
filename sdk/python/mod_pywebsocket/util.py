"""The parts of pywebsocket's util module handlers use."""
import logging


def get_class_logger(o):
    return logging.getLogger("%s.%s" % (o.__class__.__module__, o.__class__.__name__))


def hexify(s):
    return " ".join("%02x" % b for b in (s.encode("utf-8") if isinstance(s, str) else s))


def prepend_message_to_exception(message, exc):
    exc.args = (message + str(exc.args[0] if exc.args else ""),) + tuple(exc.args[1:])
