"""One run at a time writes a results folder: `FolderLock`, held from the resume check to the
end of the run."""

from __future__ import annotations

import fcntl
import os
import socket
import typing
from pathlib import Path

from sweeps.spec import InputError


class FolderInUseError(InputError):
    """Another run is writing the same results folder (exit code 2)."""


class FolderLock:
    """One writer per results folder: an exclusive lock, held from the resume check to the end
    of the run (a context manager).

    The lock is taken on a file beside the folder (`.<name>.lock`, in --out), not in it, so
    that `--fresh` can delete and recreate the folder while holding it. The operating system
    releases the lock if the process dies, so a killed run never leaves the folder locked. The
    file is removed at the end, and so is an --out folder the lock had to create, if nothing
    else was written there. `flock` locks are local to a machine: on a network file system,
    runs on two machines are not kept apart.
    """

    def __init__(self, root: Path) -> None:
        self.path = root.with_name(f".{root.name}.lock")
        self._made = [p for p in [root.parent, *root.parent.parents] if not p.exists()]
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._acquire(root)
        except OSError as exc:
            self._remove_made()
            raise FolderInUseError(f"{root}: cannot lock the results folder ({exc})") from None

    def _acquire(self, root: Path) -> typing.TextIO:
        while True:
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "another process"
                file.close()
                self._remove_made()
                raise FolderInUseError(
                    f"{root}: another run is writing this results folder ({holder}); wait for "
                    "it to finish or stop it, or give this run another --out"
                ) from None
            except BaseException:
                file.close()
                raise
            # A run that was releasing the lock may have removed the file we opened: then the
            # lock we hold is on a file no one else can find. Take it again on the new file.
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
                break
            file.close()
        file.truncate(0)
        file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        return file

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self._file.close()  # closing the file releases the lock
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in self._made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (results in it) or gone: keep it

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
