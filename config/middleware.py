"""WhiteNoise as middleware that also runs natively under ASGI.

WhiteNoise's own middleware is synchronous only. In an async middleware chain Django would
run it, and everything below it, in a thread for the whole request: the OpenAI-compatible
views, which wait for a job on the event loop, would hold a blocked thread each after all.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(self.static_prefix):
            # A lookup may touch the disk (autorefresh in development): off the event loop.
            static_file = await sync_to_async(self._find, thread_sensitive=False)(path)
            if static_file is not None:
                return self.serve(static_file, request)
        return await self.get_response(request)

    def _find(self, path: str) -> Any:
        return self.find_file(path) if self.autorefresh else self.files.get(path)
