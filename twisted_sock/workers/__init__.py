"""
Worker processes (C{[sock] workers = N}): the main process opens every
listener and supervises N workers that serve them (see docs/scaling.rst).

 - L{twisted_sock.workers.affinity}: the reuseport BPF program (pure).
 - L{twisted_sock.workers.listen}: the main process's listening sockets.
 - L{twisted_sock.workers.inherit}: a worker serves inherited sockets.
 - L{twisted_sock.workers.shared}: C{max_connections} across workers.
 - L{twisted_sock.workers.aggregate}: statistics summed (pure).
 - L{twisted_sock.workers.control}: the AMP commands.
 - L{twisted_sock.workers.supervisor}: the main process.
 - L{twisted_sock.workers.slot}: one worker slot of the main process.
 - L{twisted_sock.workers.forkserver}: the process the workers are forked
   from (shared TLS session-ticket keys); L{twisted_sock.workers.forked}:
   the main process's end of it.
 - L{twisted_sock.workers.replace}: replacing workers without a drop (the
   key rotation).
 - L{twisted_sock.workers.activation}: the main process on inherited
   sockets (an upgrade's, systemd's).
 - L{twisted_sock.workers.handover}: upgrades and sd_notify of the main
   process under twistd.
 - L{twisted_sock.workers.worker}: a worker process.
"""
