"""Default socket resolution: the rules of client/src/socket.rs."""

import os

import pytest

import ctxd
from ctxd import _socket


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("CTXD_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return monkeypatch


def test_explicit_path_wins_over_everything(clean_env):
    clean_env.setenv("CTXD_SOCKET", "/from/env.sock")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctxd.resolve_socket("/explicit.sock") == "/explicit.sock"


def test_explicit_path_may_be_path_like(clean_env, tmp_path):
    assert ctxd.resolve_socket(tmp_path / "s.sock") == str(tmp_path / "s.sock")


def test_ctxd_socket_wins_over_the_runtime_dir(clean_env):
    clean_env.setenv("CTXD_SOCKET", "/from/env.sock")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctxd.resolve_socket() == "/from/env.sock"


def test_empty_ctxd_socket_is_ignored(clean_env):
    clean_env.setenv("CTXD_SOCKET", "")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctxd.resolve_socket() == "/run/user/7/ctxd/ctxd.sock"


def test_xdg_runtime_dir(clean_env):
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctxd.resolve_socket() == "/run/user/7/ctxd/ctxd.sock"
    assert _socket.default_runtime_dir() == "/run/user/7/ctxd"


def test_tmp_fallback_per_uid(clean_env):
    assert ctxd.resolve_socket() == f"/tmp/ctxd-{os.getuid()}/ctxd.sock"


def test_empty_xdg_runtime_dir_falls_back_to_tmp(clean_env):
    clean_env.setenv("XDG_RUNTIME_DIR", "")
    assert ctxd.default_socket() == f"/tmp/ctxd-{os.getuid()}/ctxd.sock"


def test_client_uses_ctxd_socket(clean_env, daemon):
    clean_env.setenv("CTXD_SOCKET", str(daemon.socket))
    with ctxd.Client() as client:
        assert client.socket == str(daemon.socket)
        assert client.server["pid"] == daemon.pid
