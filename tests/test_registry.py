"""The factory interface: register, look up, unknown names."""
import pytest

from mlreco_spice.registry import MODELS, PARSERS, Registry, RegistryError


def test_register_and_get_plain():
    reg = Registry("widget")

    @reg.register("round")
    class Round:
        pass

    assert reg.get("round") is Round
    assert "round" in reg
    assert reg.names() == ["round"]


def test_register_pair_returns_network_and_loss():
    reg = Registry("model")

    class Loss:
        pass

    @reg.register("net", loss=Loss)
    class Net:
        pass

    network, loss = reg.get("net")
    assert network is Net and loss is Loss


def test_default_name_is_object_name():
    reg = Registry("parser")

    @reg.register()
    def sparse3d(record):
        return record

    assert reg.get("sparse3d") is sparse3d


def test_unknown_name_lists_registered_and_suggests():
    reg = Registry("model")
    reg.register("spice")(type("A", (), {}))
    reg.register("uresnet")(type("B", (), {}))
    with pytest.raises(RegistryError) as info:
        reg.get("spcie")
    message = str(info.value)
    assert "unknown model 'spcie'" in message
    assert "Did you mean 'spice'?" in message
    assert "spice, uresnet" in message


def test_duplicate_name_with_other_object_is_an_error():
    reg = Registry("model")
    reg.register("x")(type("A", (), {}))
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("x")(type("B", (), {}))


def test_builtin_stages_and_parsers_are_registered():
    assert {"spice", "uresnet"} <= set(MODELS.names())
    assert {"sparse3d", "cluster3d"} <= set(PARSERS.names())
