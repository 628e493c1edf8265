"""The one OpenRLHF version this plugin is written against, and the check every entry point runs first.

``RemoteExperienceMaker.compute_advantages_and_returns`` changed between 0.11.0 and 0.11.2 and the CLI renamed its flags
in 0.10.2, so the plugin refuses any other version instead of silently computing something else.
"""

from __future__ import annotations

import importlib.metadata

SUPPORTED_OPENRLHF = "0.11.2"


class OpenRLHFVersionError(RuntimeError):
    """The installed OpenRLHF is missing or is not the version this plugin supports."""


def check_openrlhf_version(installed: str | None = None) -> str:
    """Return the installed OpenRLHF version; raise OpenRLHFVersionError unless it is exactly 0.11.2.

    ``installed`` overrides the lookup (for tests); by default it is ``importlib.metadata.version("openrlhf")``.
    """
    if installed is None:
        try:
            installed = importlib.metadata.version("openrlhf")
        except importlib.metadata.PackageNotFoundError:
            raise OpenRLHFVersionError(
                f"openrlhf is not installed; the RSPO plugin needs openrlhf=={SUPPORTED_OPENRLHF} "
                f"(pip install 'openrlhf[vllm]=={SUPPORTED_OPENRLHF}')"
            ) from None
    if installed != SUPPORTED_OPENRLHF:
        raise OpenRLHFVersionError(
            f"openrlhf {installed} is installed, but the RSPO plugin supports only openrlhf=={SUPPORTED_OPENRLHF} "
            f"(it overrides RemoteExperienceMaker.compute_advantages_and_returns, whose body and CLI flags differ "
            f"between releases); install openrlhf=={SUPPORTED_OPENRLHF}"
        )
    return installed
