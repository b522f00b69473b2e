"""Session and AsyncSession against the live service."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from sandlot_client import AsyncSandlot, Sandlot, SandlotError, SessionFile
from tests.conftest import ADMIN_KEY, Service


def test_a_session_keeps_state_and_files(service: Service) -> None:
    with Sandlot(service.url, ADMIN_KEY, timeout=60) as sandlot:
        with sandlot.session(memory_mb=256, limits={"cpu_ms": 5_000}) as session:
            assert session.id.startswith("ses_")
            session.upload("in/data.csv", "a,b\n1,2\n3,4\n")
            printed: list[str] = []
            first = session.run(
                "import pandas as pd\ndf = pd.read_csv('in/data.csv')\nprint(len(df))",
                on_stdout=printed.append,
            )
            assert (first.status, "".join(printed)) == ("ok", "2\n")
            second = session.run("df.to_csv('out.csv', index=False)\nint(df.b.sum())")
            assert second.result is not None and second.result.json == 6
            assert session.download("out.csv") == b"a,b\n1,2\n3,4\n"
            assert SessionFile("out.csv", 12) in session.files()
            session.delete("out.csv")
            with pytest.raises(SandlotError) as missing:
                session.download("out.csv")
            assert missing.value.status_code == 404
            info = session.info()
            assert (info.state, info.memory_mb, info.usage["turns"]) == ("open", 256, 2)
            ended = session.run("while True: pass", limits={"cpu_ms": 200})
            assert ended.status == "cpu_limit"
            assert session.ended == "cpu_limit"
            with pytest.raises(SandlotError) as gone:
                session.run("1")
            assert gone.value.status_code == 410
        session_id = session.id
        with pytest.raises(SandlotError):
            _ = sandlot.session().id  # not opened yet
        closed = sandlot.session()
        with closed:
            pass
        assert closed.ended == "closed"
        closed.close()  # idempotent
    assert session_id.startswith("ses_")


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_an_async_session(service: Service, runtime: Literal["wasmtime", "pyodide"]) -> None:
    async def main() -> None:
        async with AsyncSandlot(service.url, ADMIN_KEY, timeout=60) as sandlot:
            async with sandlot.session(runtime=runtime) as session:
                await session.upload("x.txt", b"forty-one")
                await session.run("n = len(open('x.txt').read())")
                answer = await session.run("n + 32")
                assert answer.result is not None and answer.result.json == 41
                assert await session.download("x.txt") == b"forty-one"
                assert [f.path for f in await session.files()] == ["x.txt"]
                assert (await session.info()).usage["turns"] == 2
            assert session.ended == "closed"
            with pytest.raises(SandlotError) as gone:
                await session.files()
            assert gone.value.status_code == 410

    asyncio.run(main())
