"""Job data is shown as text, never as markup; secret-looking args are masked everywhere."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dpq.models import Job
from dpq_admin import redact
from tests.dashboard.conftest import url

SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
IMG_TASK = '<img src=x onerror="alert(1)">'


def redact_card_numbers(queue, args):
    if queue == "billing" and isinstance(args, dict) and "card" in args:
        return {**args, "card": "•••• " + args["card"][-4:]}
    return args


@pytest.fixture
def html_job(make_job):
    job = make_job(
        "fail",
        {"comment": SCRIPT},
        failed_at=timezone.now(),
        last_error=f"Traceback (most recent call last):\nValueError: {SCRIPT}\n",
    )
    Job.objects.filter(id=job.id).update(task=IMG_TASK)
    return job


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["failed", "all"])
def test_list_escapes_args_and_task_name(viewer_client, html_job, page):
    html = viewer_client.get(url(page)).content.decode()

    assert SCRIPT not in html
    assert IMG_TASK not in html
    assert "&lt;img src=x" in html
    assert "&lt;script&gt;" in html


@pytest.mark.django_db
def test_job_page_escapes_args_task_and_traceback(viewer_client, html_job):
    html = viewer_client.get(url("job", html_job.id)).content.decode()

    assert SCRIPT not in html
    assert IMG_TASK not in html
    assert f"ValueError: {ESCAPED}" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


@pytest.mark.django_db
def test_dashboard_escapes_task_name(viewer_client, html_job):
    html = viewer_client.get(url("changelist")).content.decode()

    assert IMG_TASK not in html
    assert "&lt;img src=x" in html


@pytest.mark.django_db
def test_secret_args_are_masked_on_list_and_job_page(viewer_client, make_job):
    job = make_job(
        "noop",
        {
            "password": "hunter2",
            "headers": {"Authorization": "Bearer abc123", "X-Api-Key": "k-999"},
            "tokens": ["t-1"],
            "user": "ann",
        },
    )

    for page in (url("queued"), url("all"), url("job", job.id)):
        html = viewer_client.get(page).content.decode()
        for secret in ("hunter2", "abc123", "k-999", "t-1"):
            assert secret not in html, (page, secret)
        assert redact.MASK in html
    assert "ann" in viewer_client.get(url("job", job.id)).content.decode()


@pytest.mark.django_db
def test_secret_key_list_is_a_setting(viewer_client, make_job, settings):
    settings.DPQ_ADMIN_SECRET_KEYS = ["pin"]
    job = make_job("noop", {"pin": "4321", "password": "shown-now"})

    html = viewer_client.get(url("job", job.id)).content.decode()

    assert "4321" not in html
    assert "shown-now" in html


@pytest.mark.django_db
def test_redact_hook_hides_more_per_queue(viewer_client, make_job, settings):
    settings.DPQ_ADMIN_REDACT = f"{__name__}.redact_card_numbers"
    job = make_job("noop", {"card": "4111111111111111"})
    Job.objects.filter(id=job.id).update(queue="billing")

    html = viewer_client.get(url("job", job.id)).content.decode()

    assert "4111111111111111" not in html
    assert "•••• 1111" in html


def ids_found(viewer_client, search: str) -> list[int]:
    response = viewer_client.get(url("all"), {"q": search})
    return [row.record.pk for row in response.context["table"].paginated_rows]


@pytest.mark.django_db
def test_search_does_not_find_job_by_value_under_secret_key(viewer_client, make_job):
    job = make_job("noop", {"user": "ann", "auth": {"password": "hunter2"}})

    response = viewer_client.get(url("all"), {"q": "hunter2"})

    assert [row.record.pk for row in response.context["table"].paginated_rows] == []
    assert f'data-job-id="{job.id}"' not in response.content.decode()
    assert Job.objects.filter(id=job.id, args__auth__password="hunter2").exists()


@pytest.mark.django_db
def test_search_finds_job_by_value_beside_secret(viewer_client, make_job):
    job = make_job("noop", {"user": "ann", "auth": {"password": "hunter2"}})

    assert ids_found(viewer_client, "ANN") == [job.id]


@pytest.mark.django_db
def test_search_does_not_find_job_by_value_under_configured_secret_key(
    viewer_client, make_job, settings
):
    settings.DPQ_ADMIN_SECRET_KEYS = ["iban"]
    make_job("noop", {"iban": "DE89370400440532013000"})

    assert ids_found(viewer_client, "DE8937") == []


@pytest.mark.django_db
def test_search_does_not_find_job_by_value_redact_hook_hides(
    viewer_client, make_job, settings
):
    settings.DPQ_ADMIN_REDACT = f"{__name__}.redact_card_numbers"
    job = make_job("noop", {"card": "4111111111111111"})
    Job.objects.filter(id=job.id).update(queue="billing")

    assert ids_found(viewer_client, "41111111") == []
    assert ids_found(viewer_client, "1111") == [job.id]


def test_mask_secrets_keeps_other_values():
    keys = redact.secret_keys()
    assert redact.mask_secrets({"a": [{"session_id": 1}], "b": 2}, keys) == {
        "a": [{"session_id": redact.MASK}],
        "b": 2,
    }


# --- Secrets in tracebacks and in free text -------------------------------------------------

LIVE_TOKEN = "sk-live-123"
CHARGE_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "shop/tasks.py", line 12, in charge\n'
    f"    gateway.charge(api_token={LIVE_TOKEN!r})\n"
    f"PaymentError: charge refused for api_token={LIVE_TOKEN}\n"
)


@pytest.fixture
def charge_failed(make_job):
    return make_job(
        "fail",
        {"api_token": LIVE_TOKEN, "user": "ann"},
        failed_at=timezone.now(),
        last_error=CHARGE_ERROR,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["failed", "job"])
def test_traceback_hides_value_of_secret_arg(viewer_client, charge_failed, page):
    address = url("job", charge_failed.id) if page == "job" else url(page)

    html = viewer_client.get(address).content.decode()

    assert LIVE_TOKEN not in html
    assert "charge refused for api_token=" + redact.MASK in html


@pytest.mark.django_db
def test_failed_list_search_results_hide_secret_in_error_column(
    viewer_client, charge_failed
):
    response = viewer_client.get(url("failed"), {"q": "ann"})

    assert [row.record.pk for row in response.context["table"].paginated_rows] == [
        charge_failed.id
    ]
    assert LIVE_TOKEN not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["failed", "job"])
def test_traceback_hides_secret_arg_value_without_its_key(
    viewer_client, make_job, page
):
    job = make_job(
        "fail",
        {"api_token": LIVE_TOKEN},
        failed_at=timezone.now(),
        last_error=f"RuntimeError: gateway said 401 to {LIVE_TOKEN}\n",
    )
    address = url("job", job.id) if page == "job" else url(page)

    html = viewer_client.get(address).content.decode()

    assert LIVE_TOKEN not in html
    assert "gateway said 401 to " + redact.MASK in html


KEY_VALUE_FORMS = [
    ("password=hunter22x", "password=" + redact.MASK),
    ("password = hunter22x", "password = " + redact.MASK),
    ("password: hunter22x", "password: " + redact.MASK),
    ('"password": "hunter22x"', f'"password": "{redact.MASK}"'),
    ("{'password': 'hunter22x'}", f"{{'password': '{redact.MASK}'}}"),
    ("Authorization: Bearer hunter22x", "Authorization: " + redact.MASK),
    ("GET /pay?session_id=hunter22x&n=1", f"GET /pay?session_id={redact.MASK}&n=1"),
]


@pytest.mark.parametrize(("text", "shown"), KEY_VALUE_FORMS)
def test_mask_text_hides_values_of_secret_looking_keys(text, shown):
    assert redact.mask_text(text, redact.secret_keys()) == shown


def test_mask_text_keeps_values_of_other_keys():
    text = "user=ann, retries: 3"

    assert redact.mask_text(text, redact.secret_keys()) == text


def test_mask_text_keeps_message_of_exception_whose_name_looks_secret():
    text = "jwt.exceptions.ExpiredSignatureError: Signature has expired"

    assert redact.mask_text(text, redact.secret_keys()) == text


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["failed", "job"])
def test_traceback_hides_secret_key_value_forms_not_in_args(
    viewer_client, make_job, page
):
    job = make_job(
        "fail",
        {"user": "ann"},
        failed_at=timezone.now(),
        last_error='KeyError: {"password": "hunter22x", "user": "ann"}\n',
    )
    address = url("job", job.id) if page == "job" else url(page)

    html = viewer_client.get(address).content.decode()

    assert "hunter22x" not in html
    assert "ann" in html


@pytest.mark.django_db
def test_args_hide_secret_value_repeated_under_other_key(viewer_client, make_job):
    job = make_job(
        "noop",
        {
            "api_token": LIVE_TOKEN,
            "note": f"paid with {LIVE_TOKEN}",
            "callback": "https://shop.example/done?token=qwerty9",
        },
    )

    for page in (url("queued"), url("all"), url("job", job.id)):
        html = viewer_client.get(page).content.decode()
        assert LIVE_TOKEN not in html, page
        assert "qwerty9" not in html, page
    assert "paid with" in viewer_client.get(url("job", job.id)).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("search", [LIVE_TOKEN, "qwerty9", "token=qwerty9"])
def test_search_does_not_find_job_by_secret_in_free_text(
    viewer_client, make_job, search
):
    job = make_job(
        "noop",
        {
            "api_token": LIVE_TOKEN,
            "note": f"paid with {LIVE_TOKEN}",
            "callback": "https://shop.example/done?token=qwerty9",
        },
    )

    response = viewer_client.get(url("all"), {"q": search})

    assert [row.record.pk for row in response.context["table"].paginated_rows] == []
    assert f'data-job-id="{job.id}"' not in response.content.decode()
    assert "dpq-search-truncated" not in response.content.decode()


@pytest.mark.django_db
def test_short_secret_values_are_masked_in_args_but_not_in_text(make_job):
    job = make_job("fail", {"session": 42}, last_error="line 42, in charge\n")

    assert redact.redact_args(job.queue, job.args) == {"session": redact.MASK}
    assert redact.redact_text(job.args, job.last_error) == "line 42, in charge\n"
