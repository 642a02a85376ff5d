# Interop check run by TestStemInterop: authenticate to the tinytor control
# server with stem by cookie, safecookie, password and stem's automatic
# choice, call get_info('version'), and receive one CIRC event.
import queue
import sys

import stem
import stem.connection
import stem.control
import stem.socket

port, cookie = int(sys.argv[1]), sys.argv[2]

for method in ("cookie", "safecookie", "password", "auto"):
    s = stem.socket.ControlPort(address="127.0.0.1", port=port)
    if method == "cookie":
        stem.connection.authenticate_cookie(s, cookie)
    elif method == "safecookie":
        stem.connection.authenticate_safecookie(s, cookie)
    elif method == "password":
        stem.connection.authenticate_password(s, "foo")
    else:
        stem.connection.authenticate(s, password="foo")
    c = stem.control.Controller(s, is_authenticated=True)
    print(method, c.get_info("version"), flush=True)
    c.close()

s = stem.socket.ControlPort(address="127.0.0.1", port=port)
try:
    stem.connection.authenticate_password(s, "wrong")
    print("wrong password accepted", flush=True)
except stem.connection.IncorrectPassword:
    print("wrong password rejected", flush=True)

info = stem.connection.get_protocolinfo(stem.socket.ControlPort(address="127.0.0.1", port=port))
print("protocolinfo", ",".join(sorted(m for m in info.auth_methods)), info.cookie_path, info.tor_version, flush=True)

c = stem.control.Controller.from_port(address="127.0.0.1", port=port)
c.authenticate(password="foo")
events = queue.Queue()
c.add_event_listener(events.put, stem.control.EventType.CIRC)
print("ready", flush=True)
e = events.get(timeout=10)
print("event", e.id, e.status, ",".join(fp for fp, _ in e.path), e.purpose, flush=True)
c.close()
