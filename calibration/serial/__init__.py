"""A physical board behind a serial port: the harness's jobs over the console USART.

``protocol`` (frames, payloads), ``host`` (pyserial side: :class:`~.host.SerialBoard`, pyOCD
flashing), ``pty_board`` (the emulator behind a pseudo-terminal, for tests), ``journal``
(measurements persisted as they arrive; resumable), ``errors`` (named errors).
"""
