# The twistd plugin: `twistd -n sock ...`. Nothing else belongs here: this
# module must not import the reactor (directly or through twisted_sock).
from twisted.application.service import ServiceMaker

twisted_sock = ServiceMaker(
    "twisted-sock",
    "twisted_sock.tap",
    "A configurable socket object: TCP, UDP and UNIX listeners that decide who may connect, "
    "TLS and STARTTLS, HTTP/1.1 and HTTP/2 ports, a status page and metrics.",
    "sock",
)
