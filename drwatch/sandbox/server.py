"""The sandbox server: moto over real HTTP on loopback, behind the fault middleware.

Clients reach it with `endpoint_url=sandbox.endpoint_url` and any static credentials (moto's
default account 123456789012). Other accounts are reached as drwatch reaches them in
production: `sts.assume_role(RoleArn="arn:aws:iam::<account>:role/drwatch-read")` against the
sandbox returns keys that moto maps back to <account>, so every later call made with those
keys lands in that account's backends.

moto keeps its state in module-level backends, so every Sandbox in one process shares it:
run one per process (a pytest session, the demo, a benchmark) and `reset()` between uses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto.iam.models import get_account_id_from
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from drwatch.sandbox.backup_moto import install_backup_extensions
from drwatch.sandbox.faults import FaultInjector, FaultMiddleware
from drwatch.sandbox.kafka_moto import install_kafka_extensions
from drwatch.sandbox.moto_extensions import install_moto_extensions
from drwatch.sandbox.s3_moto import install_s3_extensions
from drwatch.sandbox.stores_moto import install_stores_extensions
from drwatch.sandbox.validation import register_validation

DEFAULT_REGION = "us-east-1"
READ_ROLE_NAME = "drwatch-read"
SHUTDOWN_POLL_SECONDS = 0.05
STATIC_KEY = "testing"  # not a moto access key, so moto maps it to its default account


@dataclass(frozen=True, slots=True)
class SandboxCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def as_client_kwargs(self) -> dict[str, str]:
        kwargs = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        if self.session_token is not None:
            kwargs["aws_session_token"] = self.session_token
        return kwargs


STATIC_CREDENTIALS = SandboxCredentials(STATIC_KEY, STATIC_KEY)


def read_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{READ_ROLE_NAME}"


class Sandbox:
    """moto in server mode with fault injection; a context manager.

    >>> with Sandbox() as sandbox:
    ...     rds = sandbox.client("rds", "eu-west-1", account_id="111111111111")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, fault_seed: int = 0) -> None:
        self._host = host
        self._port = port
        self.faults = FaultInjector(seed=fault_seed)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._credentials: dict[str, SandboxCredentials] = {}
        self._credentials_lock = threading.Lock()
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        install_moto_extensions()
        install_backup_extensions()
        install_s3_extensions()
        install_stores_extensions()
        install_kafka_extensions()
        self._server = make_server(
            self._host,
            self._port,
            FaultMiddleware(
                DomainDispatcherApplication(create_backend_app),
                self.faults,
                account_resolver=_moto_account_of,
            ),
            threaded=True,
            request_handler=QuietRequestHandler,
        )
        self._thread = threading.Thread(target=self._serve, name="drwatch-sandbox", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        # Short poll interval: stop() waits for the serving loop to notice the shutdown.
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not running: call start() first")
        return f"http://{self._host}:{self._server.server_port}"

    def reset(self) -> None:
        """Forget every AWS resource in every account (moto-wide) and every fault rule.

        Assumed-role keys live in moto's IAM state, so they are forgotten too.
        """
        moto_api_backend.reset()
        self.faults.clear()
        with self._credentials_lock:
            self._credentials.clear()

    def credentials(self, account_id: str | None = None) -> SandboxCredentials:
        """Static keys for moto's default account, assumed-role keys for any other."""
        if account_id is None:
            return STATIC_CREDENTIALS
        with self._credentials_lock:
            cached = self._credentials.get(account_id)
            # moto's state is process-wide: a reset by anyone (another Sandbox, a POST to
            # /moto-api/reset) forgets assumed-role keys, which then map to the default account.
            if cached is None or get_account_id_from(cached.access_key_id) != account_id:
                cached = self._assume_read_role(account_id)
                self._credentials[account_id] = cached
            return cached

    def client(
        self,
        service_name: str,
        region_name: str = DEFAULT_REGION,
        account_id: str | None = None,
        config: Config | None = None,
    ) -> Any:
        """A boto3 client for the sandbox that validates every response against botocore."""
        credentials = self.credentials(account_id)
        # One session caches the loaded service models (a fresh one costs ~150 ms per client);
        # sessions are not thread-safe, so creation is serialised. Clients themselves are.
        with self._session_lock:
            client = self._session.client(
                service_name,  # type: ignore[call-overload]
                region_name=region_name,
                endpoint_url=self.endpoint_url,
                config=config,
                **credentials.as_client_kwargs(),
            )
        return register_validation(client)

    def _assume_read_role(self, account_id: str) -> SandboxCredentials:
        sts = self.client("sts", DEFAULT_REGION)
        response = sts.assume_role(
            RoleArn=read_role_arn(account_id), RoleSessionName="drwatch-sandbox"
        )
        creds = response["Credentials"]
        return SandboxCredentials(
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
        )


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's one-line-per-request access log."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _moto_account_of(access_key: str) -> str:
    return get_account_id_from(access_key)
