"""botocore's data loader, without two costs a cold start paid for nothing.

Every client's first use of a model type (service-2, endpoint-rule-set-1) made botocore's
`Loader.list_available_services` list the data directory of all ~450 services and every one of
their API versions (~9 ms of CPU per type), only to check that the one service asked for exists;
and its JSON loader builds every object of a model as an OrderedDict (endpoints.json alone is
1.2 MB), about twice as slow to parse as Python's dicts, which keep their order too. With both
gone the jobs table's client is built in ~26 ms of CPU instead of ~53 (bench/cold_start.py,
docs/performance.md; docs/aws-notes.md#n117-botocore-data-loading).

`QuickLoader` answers "is this service known?" from that one service's directory (the listing
botocore itself makes next, for the latest API version) and still lists them all when asked for
the list; `PlainJSONFileLoader` reads the same files (.json, or .json.gz) into plain dicts. Both
are botocore's own classes with one method each replaced, given to a session with
`register_component("data_loader", ...)`, botocore's hook for a session's loader.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader

# the model files botocore ships and reads: plain JSON, or gzipped (botocore.loaders._JSON_OPEN_METHODS)
_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    (".json", open),
    (".json.gz", gzip.open),
)


class PlainJSONFileLoader(JSONFileLoader):
    def load_file(self, file_path: str) -> Any:
        """The file at `file_path` + .json or .json.gz as plain dicts and lists; None if neither exists."""
        for extension, opener in _OPENERS:
            full_path = file_path + extension
            if os.path.isfile(full_path):
                with opener(full_path, "rb") as stream:
                    return json.loads(stream.read().decode("utf-8"))
        return None


class _KnownServices:
    """`Loader.list_available_services(type_name)` for its one use on a client's path, `name in
    known`: answered from that service's own directory; the whole sorted list only when iterated."""

    def __init__(self, loader: Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, service_name: object) -> bool:
        if not isinstance(service_name, str) or not service_name or os.sep in service_name:
            return False
        try:
            self._loader.list_api_versions(service_name, self._type_name)  # cached; botocore's next call
        except DataNotFoundError:
            return False
        return True

    def _all(self) -> list[str]:
        return list(Loader.list_available_services(self._loader, self._type_name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class QuickLoader(Loader):
    FILE_LOADER_CLASS = PlainJSONFileLoader

    def list_available_services(self, type_name: str) -> Any:
        return _KnownServices(self, type_name)


def loader(data_path: str | None = None) -> QuickLoader:
    """A QuickLoader searching `data_path` (the session's `data_path`, AWS_DATA_PATH: os.pathsep
    separated) before botocore's own data, as `botocore.loaders.create_loader` does."""
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    return QuickLoader(extra_search_paths=paths)
