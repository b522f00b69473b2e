"""Pure-Python packages on every engine that has them: installed ahead, loaded offline.

`make build` installs pyodide-runtime/packages.txt into Pyodide's lock file and
sandbox/engines/stack/packages.txt into the data-stack guest's site directory
(requests, faker, pytz, holidays, ...). The component guest has none.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.conftest import Run, engine_gap
from tests.conftest import execute
from tests.loopback import LoopbackServer


def test_default_packages_import_and_work(run: Run, engine: str) -> None:
    engine_gap(engine, "component", "no packages (the data-stack guest has them)")
    code = (
        "import datetime\n"
        "from faker import Faker\n"
        "import holidays, pytz\n"
        "Faker.seed(7)\n"
        "fake = Faker()\n"
        "name, email = fake.name(), fake.email()\n"
        "us = holidays.US(years=2024)\n"
        "paris = pytz.timezone('Europe/Paris')\n"
        "noon = paris.localize(datetime.datetime(2024, 7, 1, 12))\n"
        "[bool(name), '@' in email, us.get(datetime.date(2024, 7, 4)),\n"
        " datetime.date(2024, 12, 25) in us, noon.utcoffset().total_seconds()]"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [True, True, "Independence Day", True, 7200.0]


def test_requirements_on_the_stack_accept_installed_and_built_in_packages(
    client: httpx.Client,
) -> None:
    code = "import faker, numpy\nfaker.Faker().name() != '' and int(numpy.arange(4).sum())"
    body = execute(client, code, runtime="wasmtime", requirements=["Faker", "numpy", "pytz"])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == 6


def test_missing_requirement_on_the_stack_is_a_422_saying_how_to_add_it(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/v1/execute",
        json={"code": "1", "runtime": "wasmtime", "requirements": ["faker", "no-such-thing"]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "requirements"
    assert "no-such-thing" in error["message"] and "make packages" in error["message"]
    assert "faker" not in error["message"].split(":")[1]


def test_installed_packages_never_shadow_built_in_ones(client: httpx.Client) -> None:
    code = (
        "import dateutil, jinja2, requests, faker\n"
        "[m.__file__.split('/')[4] for m in (dateutil, jinja2, requests, faker)]"
    )
    body = execute(client, code, runtime="wasmtime")
    assert body["status"] == "ok", body
    # The stack's zip, then the installed site directory.
    assert body["result"]["json"] == ["python315.zip"] * 2 + ["python3.15"] * 2


def test_missing_module_error_lists_installed_packages(client: httpx.Client) -> None:
    body = execute(client, "import no_such_module", runtime="wasmtime")
    assert body["error"]["type"] == "ModuleNotFoundError"
    assert "faker" in body["error"]["message"] and "make packages" in body["error"]["message"]


@pytest.mark.parametrize("module", ["requests", "faker", "holidays"])
def test_installed_packages_load_from_bytecode(client: httpx.Client, module: str) -> None:
    code = (
        "import importlib.util, os\n"
        f"spec = importlib.util.find_spec({module!r})\n"
        "os.path.exists(importlib.util.cache_from_source(spec.origin))"
    )
    body = execute(client, code, runtime="wasmtime")
    assert body["status"] == "ok", body
    assert body["result"]["json"] is True


def test_requests_works_and_goes_through_the_gate(
    client: httpx.Client, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    code = (
        "import requests\n"
        f"r = requests.get('{loopback.url}/json', timeout=5)\n"
        "try:\n"
        f"    requests.get('{canary.url}/hello', timeout=5)\n"
        "    refused = False\n"
        "except Exception as exc:\n"
        "    refused = True\n"
        "[r.status_code, r.json(), refused]"
    )
    body = execute(client, code, runtime="pyodide", allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] == [200, {"answer": 42}, True]
    assert loopback.hit_count == 1
    assert canary.hit_count == 0


def test_named_requirements_load_before_the_code(client: httpx.Client) -> None:
    # The code never names idna, so only the requirement can have installed it.
    code = "import importlib.util\nimportlib.util.find_spec('idna') is not None"
    assert execute(client, code, runtime="pyodide", requirements=["idna"])["result"]["json"]
    assert not execute(client, code, runtime="pyodide")["result"]["json"]


def test_missing_requirement_is_a_422_naming_it(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute",
        json={"code": "1", "runtime": "pyodide", "requirements": ["idna", "numpy"]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "requirements"
    assert "numpy" in error["message"] and "idna" not in error["message"].split(":")[-2]


def test_requirements_on_the_component_say_which_engines_load_packages(
    _component_client: httpx.Client,
) -> None:
    response = _component_client.post(
        "/v1/execute", json={"code": "1", "runtime": "wasmtime", "requirements": ["idna"]}
    )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "pyodide" in message and "data-stack" in message


def test_uninstalled_import_fails_cleanly(client: httpx.Client) -> None:
    body = execute(client, "import numpy", runtime="pyodide")
    assert body["status"] == "error"
    assert body["error"]["type"] == "ModuleNotFoundError"


# What data code reaches for beyond the stack's built-ins, each doing one real thing:
# package → (code whose last expression is the answer, the answer, why Pyodide lacks it
# or None). The component guest has no packages; Pyodide has no compiled ones (lxml,
# markupsafe, regex), so none of what needs them.
DATA_PACKAGES: dict[str, tuple[str, object, str | None]] = {
    "natsort": (
        "from natsort import natsorted\nnatsorted(['run10.csv', 'run2.csv', 'run1.csv'])",
        ["run1.csv", "run2.csv", "run10.csv"],
        None,
    ),
    "chardet": (
        "import chardet\n"
        "text = 'Привет, мир! Это тест кодировки текста на русском языке.'\n"
        "guess = chardet.detect(text.encode('cp1251'))\n"
        "[guess['encoding'], guess['confidence'] > 0.8]",
        ["windows-1251", True],
        None,
    ),
    "xlwt": (
        # xlrd opens a file by name with mmap on CPython: not on WASI (the guest reads it).
        "import xlrd, xlwt\n"
        "book = xlwt.Workbook()\n"
        "sheet = book.add_sheet('q1')\n"
        "for row, (name, n) in enumerate([('a', 3), ('b', 4)]):\n"
        "    sheet.write(row, 0, name)\n"
        "    sheet.write(row, 1, n)\n"
        "book.save('out.xls')\n"
        "back = xlrd.open_workbook('out.xls').sheet_by_name('q1')\n"
        "[back.col_values(0), sum(back.col_values(1))]",
        [["a", "b"], 7.0],
        None,
    ),
    "rsa": (
        "import rsa\n"
        "public, private = rsa.newkeys(512)\n"
        "signature = rsa.sign(b'report', private, 'SHA-256')\n"
        "secret = rsa.encrypt(b'hi', public)\n"
        "[rsa.decrypt(secret, private).decode(), rsa.verify(b'report', signature, public)]",
        ["hi", "SHA-256"],
        None,
    ),
    "prettytable": (
        "from prettytable import PrettyTable\nfrom texttable import Texttable\n"
        "t = PrettyTable(['city', 'n'])\nt.add_row(['Oslo', 7])\n"
        "u = Texttable()\nu.add_rows([['city', 'n'], ['Oslo', 7]])\n"
        "['| Oslo |' in t.get_string(), '| Oslo |' in u.draw()]",
        [True, True],
        None,
    ),
    "xmltodict": (
        "import xmltodict\nxmltodict.parse('<r><i k=\"1\">a</i><i k=\"2\">b</i></r>')['r']['i'][1]",
        {"@k": "2", "#text": "b"},
        None,
    ),
    "python-docx": (
        "from docx import Document\n"
        "d = Document()\nd.add_heading('Q1', 1)\nt = d.add_table(rows=1, cols=2)\n"
        "t.rows[0].cells[1].text = 'total'\nd.save('r.docx')\n"
        "back = Document('r.docx')\n"
        "[back.paragraphs[0].text, back.tables[0].rows[0].cells[1].text]",
        ["Q1", "total"],
        "needs lxml, which is compiled",
    ),
    "pyquery": (
        "from pyquery import PyQuery\n"
        'page = PyQuery(\'<ul><li><a href="/a">A</a></li><li><a href="/b">B</a></li></ul>\')\n'
        "[a.attr('href') for a in page('li a').items()]",
        ["/a", "/b"],
        "needs lxml, which is compiled",
    ),
    "flask": (
        "from flask import Flask, jsonify\n"
        "app = Flask('api')\n"
        "@app.get('/sum/<int:a>/<int:b>')\n"
        "def total(a, b):\n"
        "    return jsonify(total=a + b)\n"
        "r = app.test_client().get('/sum/2/40')\n"
        "[r.status_code, r.get_json()]",
        [200, {"total": 42}],
        "needs markupsafe, which is compiled",
    ),
    "geopy": (
        # On the data-stack guest geopy imports on _sandlot_ssl's stand-in for _ssl.
        "from geopy.distance import geodesic, great_circle\n"
        "oslo, paris = (59.9139, 10.7522), (48.8566, 2.3522)\n"
        "[round(geodesic(oslo, paris).km), round(great_circle(oslo, paris).km)]",
        [1344, 1342],
        None,
    ),
    "flask-extensions": (
        # Generated web tasks test their app with its test client: no server, no network.
        "from flask import Flask\n"
        "from flask_login import LoginManager, UserMixin, login_user, current_user\n"
        "from flask_mail import Mail, Message\n"
        "from flask_restful import Api, Resource\n"
        "from flask_wtf import FlaskForm\n"
        "from wtforms import StringField\n"
        "from wtforms.validators import DataRequired\n"
        "app = Flask('api')\n"
        "app.config.update(SECRET_KEY='k', WTF_CSRF_ENABLED=False, MAIL_SUPPRESS_SEND=True,\n"
        "                  MAIL_DEFAULT_SENDER='bot@example.com')\n"
        "mail, login = Mail(app), LoginManager(app)\n"
        "class User(UserMixin):\n"
        "    id = 'ada'\n"
        "login.user_loader(lambda uid: User() if uid == 'ada' else None)\n"
        "class Hello(Resource):\n"
        "    def get(self):\n"
        "        return {'hello': 'world'}\n"
        "Api(app).add_resource(Hello, '/hello')\n"
        "class Name(FlaskForm):\n"
        "    name = StringField('name', validators=[DataRequired()])\n"
        "with app.test_request_context(method='POST', data={'name': ''}):\n"
        "    valid = Name().validate()\n"
        "    login_user(User())\n"
        "    who = current_user.id\n"
        "with app.app_context(), mail.record_messages() as outbox:\n"
        "    mail.send(Message('report', recipients=['ada@example.com'], body='done'))\n"
        "[app.test_client().get('/hello').get_json(), valid, who, outbox[0].subject]",
        [{"hello": "world"}, False, "ada", "report"],
        "needs markupsafe, which is compiled",
    ),
    "django": (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(DEBUG=True)\n"
        "django.setup()\n"
        "from django.http import HttpResponse\n"
        "from django.template import Context, Engine\n"
        "r = HttpResponse('a,b\\n1,2', content_type='text/csv')\n"
        "r['Content-Disposition'] = 'attachment; filename=\"x.csv\"'\n"
        "page = Engine().from_string('<p>{{ name|upper }}</p>').render(Context({'name': '<b>'}))\n"
        "[r.status_code, r['Content-Type'], r.content.decode(), page]",
        [200, "text/csv", "a,b\n1,2", "<p>&lt;B&gt;</p>"],
        "is not among Pyodide's packages (pyodide-runtime/packages.txt)",
    ),
    "mechanize": (
        "import mechanize\n"
        "form = mechanize.HTMLForm('http://example.com/search', method='GET')\n"
        "form.new_control('text', 'q', {'value': ''})\n"
        "form.fixup()\n"
        "form['q'] = 'sandlot'\n"
        "[type(mechanize.Browser()).__name__, form.click().get_full_url()]",
        ["Browser", "http://example.com/search?q=sandlot"],
        "is not among Pyodide's packages (pyodide-runtime/packages.txt)",
    ),
    "textblob": (
        # Sentiment and spelling need no nltk data; tokenizing (words, sentences) does.
        "from textblob import TextBlob\nfrom nltk.stem import PorterStemmer\n"
        "s = TextBlob('I love this').sentiment\n"
        "[s.polarity, s.subjectivity, PorterStemmer().stem('running')]",
        [0.5, 0.6, "run"],
        "nltk needs regex, which is compiled",
    ),
}


@pytest.mark.parametrize("package", DATA_PACKAGES)
def test_data_packages_import_and_work(run: Run, engine: str, package: str) -> None:
    code, expected, pyodide_lacks = DATA_PACKAGES[package]
    engine_gap(engine, "component", "no packages (the data-stack guest has them)")
    if pyodide_lacks:
        engine_gap(engine, "pyodide", f"{package} {pyodide_lacks}")
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == expected


def test_nltk_without_its_data_says_what_is_missing(client: httpx.Client) -> None:
    # Nothing downloads nltk's data: what needs it fails with nltk's own LookupError.
    code = (
        "import nltk\n"
        "try:\n"
        "    nltk.word_tokenize('Hello there.')\n"
        "    outcome = 'tokenized'\n"
        "except LookupError as exc:\n"
        "    outcome = 'punkt' in str(exc)\n"
        "[outcome, nltk.tokenize.wordpunct_tokenize('a-b.')]"
    )
    body = execute(client, code, runtime="wasmtime")
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [True, ["a", "-", "b", "."]]
