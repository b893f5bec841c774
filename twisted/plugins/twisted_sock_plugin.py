# The twistd plugin: `twistd -n sock ...`. Nothing else belongs here: this
# module must not import the reactor (directly or through twisted_sock).
from twisted.application.service import ServiceMaker

twisted_sock = ServiceMaker(
    "twisted-sock",
    "twisted_sock.tap",
    "A configurable socket object: filtered TCP listeners, HTTP ports, status page.",
    "sock",
)
