"""The password hasher for sign-up day: Argon2id at OWASP's minimum parameters."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    """Argon2id with 19 MiB of memory, 2 passes and 1 lane (OWASP's password cheat sheet).

    Django's own defaults (100 MiB, 8 lanes) cost several times more CPU for each sign-up
    and login; these keep the hash memory-hard (a GPU or ASIC attacker pays for the memory)
    while a core hashes dozens of passwords a second. The algorithm name stays "argon2", so
    hashes made with other parameters verify as usual and are rewritten at the next login.
    """

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
