"""Whether a create may use a local image for its platform, as dockerd decides: with --platform the image
must be for it (else a 404 in Docker's words, so the CLI pulls the right one); without, an image for
another platform still runs, with dockerd's warning."""
from __future__ import annotations

from typing import Any

from pyd.daemon.errors import BadParameter, NotFound
from pyd.formats.platforms import Platform, PlatformError, image_platform, mismatch_message, parse_platform


def check_platform(reference: str, config: dict[str, Any], requested: str, host: Platform) -> list[str]:
    """The warnings for creating a container of the image (`config`) named `reference`; raises when the
    --platform (`requested`) is bad or names another platform than the image's."""
    actual = image_platform(config)
    if requested:
        try:
            want = parse_platform(requested, host)
        except PlatformError as e:
            raise BadParameter(str(e)) from None
        if not want.matches(actual.os, actual.architecture, actual.variant):
            raise NotFound(mismatch_message(reference, want, actual))
        return []
    if config.get("architecture") and not host.matches(actual.os, actual.architecture, actual.variant):
        return [f"The requested image's platform ({actual}) does not match the detected host platform "
                f"({host}) and no specific platform was requested"]
    return []
