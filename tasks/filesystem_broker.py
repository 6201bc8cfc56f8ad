"""kombu's filesystem transport, with messages that appear whole or not at all.

The stock transport creates a message file and then writes into it. A worker
polling the folder can take the file in between, read nothing, and stop with
"Unrecoverable error: JSONDecodeError" (seen under load with the embedded
defaults). Here the producer writes under a name no consumer looks at and then
renames the file into place: a rename within one folder is atomic, so a
consumer finds either a complete message or none.

`tasks.celery_app` selects this transport for `filesystem://` broker URLs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's filesystem Channel already renames its base class's `message`
    # argument to `payload`; the override keeps the filesystem Channel's form.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put `payload` on `queue`. Same file name as the stock transport (its
        millisecond prefix keeps the order); written first as a hidden partial
        file, which the consumer's `<name>.<queue>.msg` filter skips."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
