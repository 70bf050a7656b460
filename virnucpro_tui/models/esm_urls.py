"""The URLs fair-esm downloads ESM-2 from, read from fair-esm itself (``models download`` fetches
them; ``locate`` names them when the checkpoint is missing)."""

from __future__ import annotations

from typing import Any

from virnucpro_tui.models.transfer import DownloadError

ESM_MODEL = "esm2_t36_3B_UR50D"


class _UrlsCaptured(Exception):
    pass


def fair_esm_urls(model_name: str = ESM_MODEL) -> tuple[str, ...]:
    """The URLs fair-esm downloads for ``model_name`` (weights, then contact regression).

    Calls fair-esm's own ``esm.pretrained.<model_name>()`` with its hub download function
    replaced by a recorder; loading, and torch.hub itself, are replaced by a stop, so nothing is
    fetched or unpickled here even if fair-esm took another path."""
    import esm.pretrained as pretrained
    import torch.hub

    urls: list[str] = []

    def record(url: str) -> dict[str, Any]:
        urls.append(url)
        return {}

    def stop(*_args: Any, **_kwargs: Any) -> Any:
        raise _UrlsCaptured

    replaced = [
        (pretrained, "load_hub_workaround", record),
        (pretrained, "load_model_and_alphabet_core", stop),
        (torch.hub, "load_state_dict_from_url", stop),
    ]
    if not all(hasattr(module, name) for module, name, _ in replaced):
        raise DownloadError(f"this fair-esm does not name its download URLs for {model_name}")
    saved = [(module, name, getattr(module, name)) for module, name, _ in replaced]
    try:
        for module, name, value in replaced:
            setattr(module, name, value)
        getattr(pretrained, model_name)()
    except _UrlsCaptured:
        pass
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
    if not urls:
        raise DownloadError(f"fair-esm names no download URL for {model_name}")
    return tuple(urls)
