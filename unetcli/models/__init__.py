"""The seed U-Net architectures and the registry that names them."""

from unetcli.models.registry import (REGISTRY_VERSION, ModelSpec, create_model, get_spec, list_models, register_model,
                                     unregister_model)

__all__ = ["REGISTRY_VERSION", "ModelSpec", "create_model", "get_spec", "list_models", "register_model",
           "unregister_model"]
