"""Find the kubelet as it really runs: its process, its systemd unit, its config.

Pure parsers (:mod:`.pflags`, :mod:`.unitfile`, :mod:`.envfile`, :mod:`.kubeletconf`)
turn bytes into data; :mod:`.procscan` and :mod:`.units` read the host (under
``--host-root``); :mod:`.settings` derives one immutable
:class:`~agent.kubeletsettings.KubeletSettings` with the source of every value;
:func:`.discover.discover` ties them together and never raises.
"""
