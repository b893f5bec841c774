"""
Operating the service from outside one process: listening sockets
inherited (L{inherit<twisted_sock.ops.inherit>}: described and matched to
the listener plan, pure; L{adopt<twisted_sock.ops.adopt>}: served by a
port), systemd (L{systemd<twisted_sock.ops.systemd>}: socket activation
and C{sd_notify}), upgrades without a dropped connection
(L{upgrade<twisted_sock.ops.upgrade>}) and health for load balancers
(L{health<twisted_sock.ops.health>}).
"""
