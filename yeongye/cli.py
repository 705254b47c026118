"""The `yeongye` command: bring up the local stack, load the registry, launch and steer cases.

Messages are Korean first with English after them. Listing commands take ``--json`` so other
tools can script them. Bad input exits non-zero with a message naming the option, and writes
nothing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from registry import access, accounts, calendar, cases, deadlines, detection, hoarding, housing, jobs, outbox, programs
from registry import audit as trail
from registry.catalog import AGENCY_TYPE_CODES, SERVICES
from registry.db import Database
from registry.loader import LoadReport, RegistryLoadError, load_registry, load_sample
from registry.mental_health import EMERGENCY_HOLD_BASIS, SceneEntry
from registry.models import Agency, AuditEntry, Case, HolidayOverride, OutboxMessage, Resident, Staff
from registry.text import ID_MAX, clean_text
from registry.timeline import case_timeline
from templates import weekday
from yeongye.mailcapture import read_captured
from yeongye.settings import RegistryUnavailable, Settings, get_settings

app = typer.Typer(
    help="yeongye (연계): 공공임대 주거복지 다기관 연계 관리 / multi-agency welfare linkage",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _private_files() -> None:
    """Whatever a command writes (a SQLite registry, an export) is readable by its owner only."""
    os.umask(0o077)


registry_app = typer.Typer(help="기관·단지·입주민 등록부 / the registry", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
conference_app = typer.Typer(help="통합사례회의: 일정, 회의 결과·역할 / case conferences", no_args_is_help=True)
app.add_typer(conference_app, name="conference")
program_app = typer.Typer(help="단지 공동 프로그램: 참여자 등록, 출석 / group programmes", no_args_is_help=True)
app.add_typer(program_app, name="program")
jobs_app = typer.Typer(help="일자리 연계: 자격 확인 사항 기록 / job placement", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
housing_app = typer.Typer(help="주거지원: 주거 욕구 기록 / housing support", no_args_is_help=True)
app.add_typer(housing_app, name="housing")
hoarding_app = typer.Typer(
    help="저장강박: 가정방문 확인 사항 기록 / hoarding: home-visit findings", no_args_is_help=True
)
app.add_typer(hoarding_app, name="hoarding")
staff_app = typer.Typer(help="직원 계정 / staff accounts", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
outbox_app = typer.Typer(help="보낼 메일함: 대기·실패 메일, 다시 보내기 / the email outbox")
app.add_typer(outbox_app, name="outbox")

console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]오류 (error):[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _signed_in(settings: Settings) -> tuple[Database, access.Principal]:
    """The registry, and the member of staff whose log-in this is (``yeongye login``, or a token in
    ``YEONGYE_TOKEN``); every command that reads or changes a case acts as them."""
    db = _database(settings)
    token = settings.token or _read_session(settings)
    if not token:
        raise _fail(
            "로그인하지 않았습니다: yeongye login --user <직원 ID> "
            "(not logged in: run yeongye login, or set YEONGYE_TOKEN)"
        )
    try:
        with db.transaction() as session:
            return db, accounts.authenticate(session, token, now=calendar.SystemClock().now())
    except access.AccessDenied as error:
        raise _fail(str(error)) from None


def _session_file(settings: Settings) -> Path:
    return settings.data_dir / "session"


def _read_session(settings: Settings) -> str:
    try:
        return _session_file(settings).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _setup_actor(db: Database) -> str | None:
    """Who loads a registry that has no accounts yet: the operating-system user installing it (the
    only person there is to name); None once any account can log in, when loading needs one."""
    with db.transaction() as session:
        if session.scalar(select(Staff.id).where(Staff.password_hash.is_not(None)).limit(1)) is not None:
            return None
    return f"setup:{getpass.getuser()}"


def _purpose(purpose: str) -> str:
    try:
        return clean_text(purpose, "--purpose", 128)
    except cases.CaseError as error:
        raise _fail(str(error)) from None


_PURPOSE_HELP = "열람 목적, 감사 기록에 남음 / purpose of reading, kept in the audit trail: " + ", ".join(
    f"{code} ({label})" for code, label in trail.PURPOSES.items()
)


def _database(settings: Settings) -> Database:
    """The registry the configuration names (see ``Settings.registry_url``), migrated to the newest schema."""
    try:
        url = settings.registry_url
    except RegistryUnavailable as error:
        raise _fail(str(error)) from error
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    db.migrate()
    return db


@contextmanager
def _prefect(settings: Settings) -> Iterator[None]:
    """Point the Prefect client at the running stack (its stack file), else the configured API.

    An API URL already configured for Prefect (environment or profile) wins over the default port.
    """
    from prefect.settings import PREFECT_API_URL

    from yeongye import prefect_api  # imports Prefect: only for the commands that need it

    url = settings.stack_info().get("prefect_api_url") or PREFECT_API_URL.value() or settings.prefect_api_url
    with prefect_api.connected(settings, url):
        yield


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@app.command()
def up(
    demo: bool = typer.Option(
        False,
        "--demo",
        help="준비되면 예시 등록부를 싣고 저장강박 사례 하나를 시작 / load the sample and launch one case",
    ),
) -> None:
    """로컬 스택 실행: 내장 PostgreSQL, Prefect 서버·UI, 워커, 메일 캡처 (Ctrl-C로 종료)."""
    from yeongye import prefect_api, steering  # imports Prefect: only for the commands that need it
    from yeongye.processes import StackError
    from yeongye.stack import StackInfo, configure_logging, run_stack

    configure_logging()
    settings = get_settings()

    def ready(info: StackInfo) -> None:
        console.print(f"[bold green]준비됨 (ready)[/]  Prefect UI: [link]{info.ui_url}[/]")
        console.print(f"메일 캡처 (mail capture): 127.0.0.1:{info.smtp_port} → {info.mail_dir}")
        if demo:
            db = Database(info.registry_url)
            # The person who started the stack on this machine, named by the operating system.
            starter = f"setup:{getpass.getuser()}"
            load_sample(db, actor=starter)
            with prefect_api.connected(settings, info.api_url):
                launched = steering.launch(
                    db, intervention="hoarding", complex_code="D", resident_ref="R-D-001", by=starter
                )
            console.print(
                f"예시 사례 시작 (demo case): {launched.case_ref} → {info.ui_url}/runs/flow-run/{launched.flow_run_id}"
            )
        console.print("종료하려면 Ctrl-C (stop with Ctrl-C)")

    try:
        run_stack(settings, on_ready=ready)
    except StackError as error:
        raise _fail(str(error)) from None


@app.command()
def login(
    user: str = typer.Option(..., "--user", help="직원 ID / staff id"),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="비밀번호를 표준 입력 첫 줄에서 읽음 (스크립트용) / read the password from stdin",
    ),
    print_token: bool = typer.Option(
        False,
        "--print-token",
        help="토큰을 파일에 두지 않고 출력 (YEONGYE_TOKEN 용) / print the token instead of storing it",
    ),
) -> None:
    """로그인: 근무 하루 동안 유효한 토큰을 받습니다 (<data_dir>/session, 본인만 읽기) / log in for a working day."""
    settings = get_settings()
    password = (
        sys.stdin.readline().rstrip("\r\n") if password_stdin else typer.prompt("비밀번호 (password)", hide_input=True)
    )
    db = _database(settings)
    now = calendar.SystemClock().now()
    with db.transaction() as session:
        token = accounts.log_in(session, user.strip(), password, now=now, hours=settings.session_hours)
    if token is None:
        raise _fail(str(accounts.refused()))
    if print_token:
        typer.echo(token)
        return
    _write_private(_session_file(settings), token)
    with db.transaction() as session:
        who = accounts.authenticate(session, token, now=now)
    until = (now + dt.timedelta(hours=settings.session_hours)).astimezone(calendar.SEOUL)
    console.print(
        f"로그인 (logged in): {who.staff_id} · {access.ROLES.get(who.role, who.role)} · 센터 {who.centre_code} "
        f"· {until:%Y-%m-%d %H:%M}까지 (until)"
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, created with that mode (never chmod-ed after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text + "\n")


@app.command()
def logout() -> None:
    """로그아웃: 세션을 끝내고 토큰 파일을 지웁니다 / end the session and delete the token file."""
    settings = get_settings()
    token = settings.token or _read_session(settings)
    if token:
        with _database(settings).transaction() as session:
            accounts.log_out(session, token, now=calendar.SystemClock().now())
    _session_file(settings).unlink(missing_ok=True)
    console.print("로그아웃 (logged out)")


@app.command()
def whoami(as_json: bool = typer.Option(False, "--json")) -> None:
    """로그인한 직원, 역할, 센터 / who is logged in, with role and centre."""
    _db, who = _signed_in(get_settings())
    if as_json:
        return _print_json({"staff": who.staff_id, "role": who.role, "centre": who.centre_code})
    console.print(f"{who.staff_id} · {access.ROLES.get(who.role, who.role)} · 센터 (centre) {who.centre_code}")


@staff_app.command("set-password")
def staff_set_password(
    staff_id: str = typer.Argument(..., help="직원 ID / staff id"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="표준 입력 첫 줄에서 읽음 / read from stdin"),
) -> None:
    """센터 관리자가 직원의 비밀번호를 정합니다(첫 비밀번호, 분실); 본인 변경은 yeongye password.

    (a centre admin sets a member of staff's password; staff change their own with yeongye password)
    """
    settings = get_settings()
    db, who = _signed_in(settings)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else _new_password()
    try:
        with db.transaction() as session:
            target = session.get(Staff, staff_id)
            centre = {target.centre_code or ""} if target is not None else set()
            access.check_admin_of(session, who, centre, "staff set-password")
            accounts.set_password(session, staff_id, password, by=who.staff_id)
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    console.print(f"{staff_id}: 비밀번호 설정, 열린 세션 종료 (password set, open sessions ended)")


@app.command()
def password(
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="표준 입력에서 현재·새 비밀번호 두 줄 / current and new, two lines on stdin"
    ),
) -> None:
    """내 비밀번호를 바꿉니다 (현재 비밀번호 확인) / change your own password (the current one is asked)."""
    settings = get_settings()
    db, who = _signed_in(settings)
    if password_stdin:
        current, new = sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
    else:
        current = typer.prompt("현재 비밀번호 (current password)", hide_input=True)
        new = _new_password()
    try:
        with db.transaction() as session:
            if not accounts.check_password(session.get(Staff, who.staff_id), current):
                raise accounts.refused()
            accounts.set_password(session, who.staff_id, new, by=who.staff_id)
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    console.print("비밀번호를 바꿨습니다; 다시 로그인하십시오 (password changed; log in again)")


def _new_password() -> str:
    return str(typer.prompt("새 비밀번호 (new password)", hide_input=True, confirmation_prompt=True))


@registry_app.command("load-sample")
def registry_load_sample() -> None:
    """가상의 '가온구' 예시 등록부(센터 3, 기관 43종, 단지 A–F, 직원, 입주민)를 싣습니다; 예시 직원의 비밀번호는 demo.

    (load the sample district; its staff log in with the password "demo")
    """
    settings = get_settings()
    db = _database(settings)
    actor = _setup_actor(db)
    if actor is None:
        _db, who = _signed_in(settings)
        try:
            access.check_admin(who, "registry load-sample", central_only=True)
        except access.AccessDenied as error:
            raise _fail(str(error)) from None
        actor = who.staff_id
    _report(load_sample(db, actor=actor))
    console.print("예시 직원 로그인 (sample staff log in): yeongye login --user coord-d  (비밀번호 password: demo)")


@registry_app.command("load")
def registry_load(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON 등록부 파일")) -> None:
    """JSON 등록부 파일을 싣습니다; 오류가 하나라도 있으면 아무것도 쓰지 않습니다.

    센터 관리자만 싣습니다: 구 센터는 자기 센터의 단지·직원·입주민만, 센터·기관은 중앙센터 관리자가
    (a centre admin loads their own centre's rows; centres and agencies are the central centre's).
    계정이 하나도 없는 새 등록부는 설치하는 사람이 싣습니다 (a registry with no account yet: the installer).
    """
    settings = get_settings()
    db = _database(settings)
    actor, centre = _setup_actor(db), None
    if actor is None:
        _db, who = _signed_in(settings)
        try:
            access.check_admin(who, "registry load")
        except access.AccessDenied as error:
            raise _fail(str(error)) from None
        actor, centre = who.staff_id, None if who.centre_kind == access.CENTRAL_KIND else who.centre_code
    try:
        report = load_registry(db, path, actor=actor, centre=centre)
    except RegistryLoadError as error:
        raise _fail(f"{path}: 등록부를 싣지 못했습니다; 아무것도 쓰지 않았습니다 (nothing written)\n{error}") from None
    _report(report)


def _report(report: LoadReport) -> None:
    console.print(
        f"등록부 적재 완료 (loaded): 센터 {report.centres}, 기관유형 {report.agency_types}, 기관 {report.agencies}, "
        f"단지 {report.complexes}, 직원 {report.staff}, 입주민 {report.residents}"
    )


@app.command()
def launch(
    intervention: str = typer.Argument(..., help="개입 유형 / intervention (hoarding, mh-counselling, program …)"),
    complex_code: str = typer.Option(..., "--complex", help="단지 코드 / complex code, e.g. D"),
    resident: str | None = typer.Option(
        None,
        "--resident",
        help="입주민 참조번호 / resident reference, e.g. R-D-001 (단지 단위 프로그램에는 없음 / none for a programme)",
    ),
    kind: str | None = typer.Option(
        None, "--kind", help=f"협력 프로그램 종류 / programme kind (program: {', '.join(programs.KINDS)})"
    ),
    sessions: int | None = typer.Option(
        None, "--sessions", help="프로그램 회기 수(매월 또는 매주) / sessions of a programme (기본: 종류별 / per kind)"
    ),
    seats: int | None = typer.Option(
        None, "--seats", help="초대 인원(독거 우선) / residents invited, living alone first (기본: 종류별 / per kind)"
    ),
    agency_type: str | None = typer.Option(
        None, "--type", help="기관 연계(linkage)의 기관 유형 / agency type of a linkage (yeongye agencies)"
    ),
    service: str | None = typer.Option(
        None, "--service", help="기관 연계(linkage)의 서비스 / service of a linkage (yeongye services)"
    ),
) -> None:
    """사례를 열고 개입 flow를 시작합니다 / open a case and start its intervention flow."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    parameters = {name: value for name, value in (("sessions", sessions), ("seats", seats)) if value is not None}
    db, who = _signed_in(settings)
    try:
        with _prefect(settings):
            launched = steering.launch(
                db,
                intervention=intervention,
                complex_code=complex_code,
                resident_ref=resident,
                program_kind=kind,
                parameters=parameters,
                agency_type=agency_type,
                service=service,
                by=who,
            )
    except (cases.CaseError, steering.SteeringError) as error:
        raise _fail(str(error)) from None
    ui = settings.stack_info().get("ui_url") or f"http://127.0.0.1:{settings.prefect_port}"
    console.print(f"사례 (case): [bold]{launched.case_ref}[/]")
    console.print(f"flow run: {ui}/runs/flow-run/{launched.flow_run_id}")


@app.command("cases")
def list_cases(as_json: bool = typer.Option(False, "--json")) -> None:
    """내 센터의 사례 (중앙센터: 모든 센터) / the cases of your centre (the central centre: every case)."""
    db, who = _signed_in(get_settings())
    with db.transaction() as session:
        readable = access.readable_complexes(session, who)
        query = select(Case).order_by(Case.ref)
        if readable is not None:
            query = query.where(Case.complex_code.in_(readable))
        rows = [
            {
                "case": c.ref,
                "intervention": c.intervention,
                "complex": c.complex_code,
                "status": c.status,
                "stage": c.stage,
                "coordinator": c.coordinator_id,
                "opened_at": c.opened_at.isoformat(),
            }
            for c in session.scalars(query)
        ]
    if as_json:
        return _print_json(rows)
    table = Table("사례 case", "유형 type", "단지", "상태 status", "단계 stage", "담당 coordinator", "개시 opened")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command("case")
def show_case(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    as_json: bool = typer.Option(False, "--json"),
    purpose: str = typer.Option("case-work", "--purpose", help=_PURPOSE_HELP),
) -> None:
    """사례 타임라인: 단계, 연계, 메일, 결재, 대기 중인 것 / a case's timeline."""
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            case = cases.find_case(session, clean_text(ref, "case", ID_MAX))
            access.check_read_case(session, who, case)
            timeline = case_timeline(session, case)
            # The timeline holds what people wrote about the resident (reasons): reading it is a read.
            if case.resident_ref:
                trail.record_read(
                    session,
                    actor=who.staff_id,
                    resident_ref=case.resident_ref,
                    purpose=_purpose(purpose),
                    what=f"case {case.ref}",
                )
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    if as_json:
        return _print_json(timeline)
    console.print(
        f"[bold]{timeline['case']}[/] {' '.join(filter(None, (timeline['intervention'], timeline['program_kind'])))} · "
        f"{timeline['complex']}단지 · "
        f"상태 {timeline['status']} · 단계 {timeline['stage']} · 결과 {timeline['outcome'] or '-'}"
    )
    referrals = Table(
        "단계 step", "기관 agency", "서비스 service", "상태 status", "사유 reason", "기한 due", title="연계 referrals"
    )
    for r in timeline["referrals"]:
        # A due time (a life-safety step, in hours), or a date with the law that sets it and how it is counted.
        due = r["due_at"] or r["due"] + (f" · {r['legal_basis']}" if r["legal_basis"] else "")
        referrals.add_row(r["step"], r["agency"], r["service"], r["status"], r["reason"] or "", due)
    console.print(referrals)
    for conference in timeline["conferences"]:
        console.print(_conference_table(conference))
    approvals = Table(
        "항목 key", "종류 kind", "결재자", "상태 status", "사유 reason", "기한 due", title="결재 decisions"
    )
    for a in timeline["approvals"]:
        approvals.add_row(a["key"], a["kind"], a["approver"], a["status"], a["reason"] or "", a["due"])
    console.print(approvals)
    emails = Table("ID", "수신 기관 to", "제목 subject", "상태 status", "시도 attempts", title="메일 emails")
    for m in timeline["emails"]:
        status = f"{_OUTBOX_STATUS_LABELS[m['status']]} ({m['status']})"
        emails.add_row(str(m["id"]), m["to_agency"] or "(직원 staff)", m["subject"], status, str(m["attempts"]))
    console.print(emails)
    _print_failed_mail([m for m in timeline["emails"] if m["status"] == "failed"])
    linked = timeline["linked_cases"]
    if linked["opened_by"]:
        console.print(f"[bold]이 사례를 연 사례 (opened by case):[/] {linked['opened_by']}")
    if linked["opened"]:
        opened = ", ".join(f"{c['case']} {c['intervention']}" for c in linked["opened"])
        console.print(f"[bold]이 사례가 연 사례 (cases opened from this one):[/] {opened}")
    today = calendar.today(calendar.SystemClock()).isoformat()
    waiting = ", ".join(
        f"{w.get('agency') or w.get('key')} (~{w['due']}{', 기한 초과 overdue' if w['due'] < today else ''}"
        f"{'' if w['escalation'] == 'none' else ', 단계 escalation: ' + w['escalation']})"
        for w in timeline["waiting_for"]
    )
    console.print(f"[bold]대기 중 (waiting for):[/] {waiting or '-'}")


_RSVP = {
    "requested": "회신 없음 (no answer)",
    "accepted": "참석 (attends)",
    "rejected": "불참 (declined)",
    "completed": "회의 개최 (held)",
    "cancelled": "취소 (cancelled)",
}
_OUTCOME = {None: "기록 전 (not recorded yet)", True: "진행 (proceeds)", False: "진행 안 함 (not proceeding)"}


def _conference_table(conference: dict[str, Any]) -> Table:
    """When and where, each invited agency's answer, and what the conference decided (never the minutes)."""
    start = dt.datetime.fromisoformat(conference["starts_at"])
    end = dt.datetime.fromisoformat(conference["ends_at"])
    roles = ", ".join(f"{r['agency_id']}={r['service']}" for r in conference["roles"]) or "-"
    table = Table(
        "기관 agency",
        "회신 answer",
        "사유 reason",
        title=f"통합사례회의 conference · {start:%Y-%m-%d %H:%M}–{end:%H:%M} · {conference['place']}"
        f" · 차수 sequence {conference['sequence']}",
        caption=f"결과 outcome: {_OUTCOME[conference['held']]} · 역할 roles: {roles}",
    )
    for invitation in conference["invitations"]:
        answer = _RSVP.get(invitation["status"], invitation["status"])
        table.add_row(invitation["agency"], answer, invitation["reason"] or "")
    return table


@conference_app.command("schedule")
def conference_schedule(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    date: str = typer.Option(..., "--date", help="날짜 YYYY-MM-DD (근무일) / a business day"),
    time_of_day: str = typer.Option(..., "--time", help="시작 시각 HH:MM (서울) / start, Asia/Seoul"),
    place: str = typer.Option(..., "--place", help="장소 / place"),
    duration: int = typer.Option(90, "--duration", help="회의 시간(분) / duration in minutes"),
) -> None:
    """통합사례회의 일시·장소를 정하거나 옮깁니다; 기관에 초대 메일(달력 초대 포함)이 갑니다."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    try:
        with _prefect(settings):
            db, who = _signed_in(settings)
            wait = steering.schedule_conference(
                db, ref, date=date, time_of_day=time_of_day, place=place, duration_minutes=duration, by=who
            )
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: 통합사례회의 {date} {time_of_day} · {place} (sent to {wait.key})")


@conference_app.command("minutes")
def conference_minutes(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    file: Path | None = typer.Option(
        None, "--file", exists=True, dir_okay=False, help="회의록 (UTF-8): 등록부에만 저장 / kept in the registry only"
    ),
    role: list[str] = typer.Option(
        [], "--role", help="기관ID=서비스, 여러 번 가능: 다음 단계의 연계 / AGENCY_ID=SERVICE, repeatable"
    ),
    not_proceeding: bool = typer.Option(
        False, "--not-proceeding", help="사례를 진행하지 않음 (사유 필수) / the case does not go on"
    ),
    reason: str = typer.Option("", "--reason", help="사유 / reason"),
) -> None:
    """통합사례회의 결과를 기록합니다: 회의록, 기관별 역할(다음 단계의 연계), 진행 여부."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    minutes = None
    if file is not None:
        try:
            minutes = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise _fail(f"--file: {file}을 UTF-8 텍스트로 읽을 수 없습니다 (cannot read as UTF-8): {error}") from None
    settings = get_settings()
    try:
        with _prefect(settings):
            db, who = _signed_in(settings)
            wait = steering.record_minutes(
                db, ref, proceed=not not_proceeding, roles=role, reason=reason, minutes=minutes, by=who
            )
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    outcome = "진행 안 함 (not proceeding)" if not_proceeding else f"진행, 역할 {len(role)}개 (proceeds)"
    console.print(f"{ref}: 통합사례회의 결과 기록 (recorded): {outcome} (sent to {wait.key})")


@program_app.command("enrol")
def program_enrol(
    ref: str = typer.Argument(..., help="프로그램 사례 번호 / programme case reference"),
    resident: list[str] = typer.Option(..., "--resident", help="참여 입주민, 여러 번 가능 / resident, repeatable"),
) -> None:
    """입주민을 프로그램 참여자로 등록합니다 (등록부에만 기록) / enrol residents (registry only)."""
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            case = programs.program_case(session, ref)
            access.check_work_on_case(session, who, case, "program enrol")
            added = programs.enrol(session, case, resident, at=calendar.SystemClock().now())
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: 참여자 {added}명 등록 (enrolled)")


@program_app.command("attend")
def program_attend(
    ref: str = typer.Argument(..., help="프로그램 사례 번호 / programme case reference"),
    session_number: int = typer.Option(..., "--session", help="회기 번호 / session number, 1…"),
    resident: list[str] = typer.Option(..., "--resident", help="출석한 입주민, 여러 번 가능 / attendee, repeatable"),
) -> None:
    """회기 출석을 기록합니다; 그다음 yeongye approve로 회기 진행을 확인합니다 / record attendance."""
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            case = programs.program_case(session, ref)
            access.check_work_on_case(session, who, case, "program attend")
            added = programs.attend(session, case, session_number, resident, at=calendar.SystemClock().now())
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: {session_number}회기 출석 {added}명 기록 (attendance recorded)")


@program_app.command("show")
def program_show(
    ref: str = typer.Argument(..., help="프로그램 사례 번호 / programme case reference"),
    as_json: bool = typer.Option(False, "--json"),
    purpose: str = typer.Option("case-work", "--purpose", help=_PURPOSE_HELP),
) -> None:
    """초대·참여 입주민(개인정보: 등록부 안에서만; 열람은 감사 기록에 남음)과 회기별 출석 / roster and sessions.

    열람은 로그인한 직원의 이름으로 기록됩니다 (the read is recorded as the logged-in member of staff).
    """
    db, who = _signed_in(get_settings())
    actor, purpose = who.staff_id, _purpose(purpose)
    try:
        with db.transaction() as session:
            case = programs.program_case(session, ref, open_only=False)
            access.check_read_case(session, who, case)
            report, roster = programs.summary(session, case), programs.roster(session, case)
            for person in roster:
                trail.record_read(
                    session, actor=actor, resident_ref=str(person["ref"]), purpose=purpose, what=f"program-roster {ref}"
                )
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    if as_json:
        return _print_json({**report, "roster": roster})
    console.print(
        f"[bold]{ref}[/] {report['kind_title']} · {report['complex']}단지 · "
        f"협력 기관 {', '.join(report['partners']) or '-'} · "
        f"초대 {report['invited']} (독거 {report['invited_alone']}) · 참여 {report['enrolled']} · "
        f"회기 {report['sessions_held']}/{report['sessions_planned']} · 연인원 출석 {report['attendances']}"
    )
    people = Table("순위 rank", "참조 ref", "이름 name", "동", "호", "전화 phone", "독거 alone", "상태 status", "출석")
    for row in roster:
        people.add_row(
            str(row["priority"] or "-"),
            row["ref"],
            row["name"],
            row["building"],
            row["unit"],
            row["phone"],
            str(row["lives_alone"]),
            row["status"],
            str(row["attended"]),
        )
    console.print(people)
    sessions = Table("회기 session", "예정일 planned", "상태 status", "출석 attended", title="회기 sessions")
    for s in report["sessions"]:
        sessions.add_row(str(s["number"]), s["planned_on"], s["status"], str(s["attended"]))
    console.print(sessions)


@app.command()
def approve(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    reject: bool = typer.Option(False, "--reject", help="반려 / 동의 거부 (reject / consent refused)"),
    reason: str = typer.Option("", "--reason", help="사유 (반려 시 필수)"),
    guardian: bool = typer.Option(
        False, "--guardian", help="동의서 서명자가 보호의무자 / consent signed by a guardian"
    ),
) -> None:
    """대기 중인 결재·동의를 로그인한 직원의 이름으로 승인하거나 반려합니다; 수퍼바이저 결재는 수퍼바이저만.

    (approve or reject the decision or consent the case waits for, as the logged-in member of staff)
    """
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        with _prefect(settings):
            wait = steering.approve(
                db,
                ref,
                approved=not reject,
                reason=reason,
                by=who,
                signer="guardian" if guardian else "resident",
            )
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: {'반려' if reject else '승인'} 전달됨 (sent to {wait.key})")


@app.command()
def respond(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    agency: str = typer.Option(..., "--agency", help="기관 ID / agency id"),
    status: str = typer.Option(..., "--status", help="accepted | rejected | completed | timed-out"),
    reason: str = typer.Option("", "--reason", help="사유·결과 (거절 시 필수)"),
    outcome: str = typer.Option(
        "", "--outcome", help="결과가 정해진 단계의 결과, 예: discharged / converted-voluntary"
    ),
) -> None:
    """기관의 답변(수락·거절·완료)을 그 기관의 연계에 기록합니다; 전화로 받은 답을 기록한 직원의 이름으로 남습니다.

    (record an agency's answer, e.g. taken by phone, in the name of the logged-in member of staff)
    """
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        with _prefect(settings):
            wait = steering.respond(db, ref, agency_id=agency, status=status, reason=reason, outcome=outcome, by=who)
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: {agency} → {status} (sent to {wait.key})")


@app.command()
def reroute(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    agency: str = typer.Option("", "--agency", help="다음에 의뢰할 기관 ID / the agency to refer to next"),
    skip: bool = typer.Option(False, "--skip", help="이 연계를 건너뜀 / skip this handoff"),
    reason: str = typer.Option("", "--reason", help="사유 / reason"),
) -> None:
    """같은 유형의 기관이 더 없을 때 다음 기관을 지정하거나 연계를 건너뜁니다 (담당 주거복지사의 결정)."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    if bool(agency) == skip:
        raise _fail("--agency / --skip: 둘 중 하나만 주십시오 (give exactly one of --agency and --skip)")
    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        with _prefect(settings):
            wait = steering.reroute(db, ref, agency_id=agency, reason=reason, by=who)
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: {agency or '건너뜀 (skipped)'} (sent to {wait.key})")


emergency_app = typer.Typer(help="응급입원: 현장 기록 / emergency admission: the on-scene record", no_args_is_help=True)
app.add_typer(emergency_app, name="emergency")
_ESCORTS = {"police": "police", "119": "fire-119", "fire-119": "fire-119"}


@emergency_app.command("scene")
def emergency_scene(
    ref: str = typer.Argument(..., help="사례 번호 / case reference"),
    requested: str = typer.Option(
        ..., "--requested", help="응급입원 의뢰 시각 'YYYY-MM-DD HH:MM' (서울) / when the finder asked (Asia/Seoul)"
    ),
    doctor: str = typer.Option("", "--doctor", help="의사가 동의한 시각 / when the doctor consented"),
    doctor_refused: bool = typer.Option(False, "--doctor-refused", help="의사가 동의하지 않음 (사유 필수) / refused"),
    police: str = typer.Option("", "--police", help="동의한 경찰관의 소속 기관 ID / the officer's police agency id"),
    police_consent: str = typer.Option(
        "", "--police-consent", help="경찰관이 동의한 시각 / when the officer consented"
    ),
    police_refused: bool = typer.Option(False, "--police-refused", help="경찰관이 동의하지 않음 (사유 필수) / refused"),
    escort: str = typer.Option("", "--escort", help="호송 / escort: police (동의한 경찰관 / the officer) | 119"),
    escort_agency: str = typer.Option(
        "", "--escort-agency", help="119 구급대 기관 ID (기본: 이 구의 첫 구급대) / the 119 service"
    ),
    hospital: str = typer.Option("", "--hospital", help="정신의료기관 ID / the psychiatric hospital's agency id"),
    admitted: str = typer.Option(
        "", "--admitted", help="입원 시각: 보호 기간(§50③)이 이때부터 / when admitted: the hold runs from it"
    ),
    not_admitted: bool = typer.Option(False, "--not-admitted", help="입원하지 않음 (사유 필수) / not admitted"),
    reason: str = typer.Option("", "--reason", help="사유 (동의 없음·입원 안 함이면 필수) / reason"),
) -> None:
    """응급입원 현장에서 일어난 일을 각각의 시각과 함께 한 번에 기록합니다: 의뢰, 의사·경찰관 동의, 호송, 입원 (§50①②).

    (record the scene of an emergency admission in one go, each with its time: request, consents, escort, admission;
    the hold of §50③ runs from the recorded admission)
    """
    from yeongye import steering  # imports Prefect: only for the commands that need it

    for given, refused, option, refusal in (
        (doctor, doctor_refused, "--doctor", "--doctor-refused"),
        (police_consent, police_refused, "--police-consent", "--police-refused"),
        (admitted, not_admitted, "--admitted", "--not-admitted"),
    ):
        if bool(given) == refused:
            raise _fail(f"{option} / {refusal}: 둘 중 하나를 주십시오 (give exactly one of {option} and {refusal})")
        if refused:
            break  # nothing follows a refusal
    if escort and escort not in _ESCORTS:
        raise _fail("--escort: police 또는 119 (the police officer or a 119 crew)")
    entry = SceneEntry(
        requested_at=requested,
        doctor_consented_at=doctor,
        police_agency_id=police,
        police_consented_at=police_consent,
        escort=_ESCORTS.get(escort, ""),
        escort_agency_id=escort_agency,
        hospital_agency_id=hospital,
        admitted_at=admitted,
    )
    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        with _prefect(settings):
            sent = steering.record_emergency_scene(db, ref, entry=entry, reason=reason, by=who)
    except (steering.SteeringError, cases.CaseError) as error:
        raise _fail(str(error)) from None
    console.print(
        f"{ref}: 현장 기록 전달됨 (on-scene record sent to {sent.wait.key}) · 결과 (outcome): {sent.scene.outcome}"
    )
    if sent.clock is not None and sent.scene.admitted_at is not None:
        at, end = sent.scene.admitted_at, sent.clock.hold_end
        console.print(
            f"입원 (admitted): {at:%Y-%m-%d} ({weekday(at.date(), 'ko')}) {at:%H:%M} · "
            f"보호 기한 (hold ends): {end.isoformat()} ({weekday(end, 'ko')}) 24:00 · {EMERGENCY_HOLD_BASIS}"
        )


@jobs_app.command("facts")
def jobs_facts(
    ref: str = typer.Argument(..., help="일자리 연계 사례 번호 / job-placement case reference"),
    basic_pension: bool | None = typer.Option(None, "--basic-pension/--no-basic-pension", help="기초연금 수급"),
    livelihood_benefit: bool | None = typer.Option(None, "--livelihood/--no-livelihood", help="생계급여 수급"),
    employee_insured: bool | None = typer.Option(
        None, "--employee-insured/--no-employee-insured", help="건강보험 직장가입자"
    ),
    ltc_grade: bool | None = typer.Option(None, "--ltc-grade/--no-ltc-grade", help="장기요양 1–5등급·인지지원등급"),
    other_job_programme: bool | None = typer.Option(
        None,
        "--other-job-programme/--no-other-job-programme",
        help="다른 정부 일자리사업 참여 중 (in another government job programme)",
    ),
) -> None:
    """입주민의 일자리 자격 확인 사항을 기록합니다 (등록부에만); 그다음 yeongye approve / record job facts."""
    given = {
        "basic_pension": basic_pension,
        "livelihood_benefit": livelihood_benefit,
        "employee_insured": employee_insured,
        "ltc_grade": ltc_grade,
        "other_job_programme": other_job_programme,
    }
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            case = cases.find_case(session, clean_text(ref, "case", ID_MAX))
            access.check_work_on_case(session, who, case, "jobs facts")
            jobs.record_facts(session, case, {k: v for k, v in given.items() if v is not None}, by=who.staff_id)
            unknown = jobs.unknown_facts(case.resident) if case.resident else []
            missing = [f"{ko} ({name})" for name, ko, _ in jobs.FACTS if name in unknown]
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    console.print(f"{ref}: 자격 확인 사항 기록 (recorded)")
    if missing:
        console.print(f"아직 모름 (still unknown): {', '.join(missing)}")
    else:
        console.print(f"다음 (next): yeongye approve {ref}")


def _record_findings(
    ref: str,
    command: str,
    given: dict[str, bool | None],
    record: Callable[..., tuple[str, ...]],
) -> tuple[str, ...]:
    """Record the findings the options named (``registry.findings``) on a case the logged-in case
    worker acts on, as theirs; returns the findings that hold now."""
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            case = cases.find_case(session, clean_text(ref, "case", ID_MAX))
            access.check_work_on_case(session, who, case, command)
            return record(session, case, {k: v for k, v in given.items() if v is not None}, by=who.staff_id)
    except cases.CaseError as error:
        raise _fail(str(error)) from None


@housing_app.command("needs")
def housing_needs(
    ref: str = typer.Argument(..., help="주거지원 사례 번호 / housing-support case reference"),
    arrears: bool | None = typer.Option(None, "--arrears/--no-arrears", help=housing.label("arrears")),
    emergency: bool | None = typer.Option(None, "--emergency/--no-emergency", help=housing.label("emergency")),
    housing_cost: bool | None = typer.Option(
        None, "--housing-cost/--no-housing-cost", help=housing.label("housing-cost")
    ),
    moving_cost: bool | None = typer.Option(None, "--moving-cost/--no-moving-cost", help=housing.label("moving-cost")),
    upgrade: bool | None = typer.Option(None, "--upgrade/--no-upgrade", help=housing.label("upgrade")),
    transfer: bool | None = typer.Option(None, "--transfer/--no-transfer", help=housing.label("transfer")),
    home_modification: bool | None = typer.Option(
        None, "--home-modification/--no-home-modification", help=housing.label("home-modification")
    ),
    repairs: bool | None = typer.Option(None, "--repairs/--no-repairs", help=housing.label("repairs")),
) -> None:
    """상담에서 확인한 주거 욕구를 기록합니다 (등록부에만; 해결된 것은 --no-…); 그다음 yeongye approve /
    record the housing needs found (registry only; --no-… when settled), then approve."""
    given = {
        "arrears": arrears,
        "emergency": emergency,
        "housing-cost": housing_cost,
        "moving-cost": moving_cost,
        "upgrade": upgrade,
        "transfer": transfer,
        "home-modification": home_modification,
        "repairs": repairs,
    }
    needs = _record_findings(ref, "housing needs", given, housing.record_needs)
    console.print(f"{ref}: 주거 욕구 기록 (recorded)")
    for code in needs:
        support = housing.NEEDS[code]
        console.print(f"  {housing.label(code)} → {support.agency_type}: {SERVICES[support.service][0]}")
    if needs:
        console.print(f"다음 (next): yeongye approve {ref}")
    else:
        console.print(f'남은 욕구 없음 (no need left): yeongye approve {ref} --reject --reason "…"')


@hoarding_app.command("findings")
def hoarding_findings(
    ref: str = typer.Argument(..., help="저장강박 사례 번호 / hoarding case reference"),
    emergency: bool | None = typer.Option(
        None, "--emergency/--no-emergency", help=hoarding.label(hoarding.CRISIS_EMERGENCY)
    ),
    administrative: bool | None = typer.Option(
        None, "--administrative/--no-administrative", help=hoarding.label(hoarding.CRISIS_ADMINISTRATIVE)
    ),
    lacks_capacity: bool | None = typer.Option(
        None, "--lacks-capacity/--has-capacity", help=hoarding.label(hoarding.LACKS_CAPACITY)
    ),
    no_guardian: bool | None = typer.Option(
        None, "--no-guardian/--has-guardian", help=hoarding.label(hoarding.NO_GUARDIAN)
    ),
    safety_risk: bool | None = typer.Option(
        None, "--safety-risk/--no-safety-risk", help=hoarding.label(hoarding.SAFETY_RISK)
    ),
) -> None:
    """가정방문에서 확인한 사항을 기록합니다 (등록부에만); 그다음 yeongye approve /
    record what the home visit found (registry only), then approve."""
    given = {
        hoarding.CRISIS_EMERGENCY: emergency,
        hoarding.CRISIS_ADMINISTRATIVE: administrative,
        hoarding.LACKS_CAPACITY: lacks_capacity,
        hoarding.NO_GUARDIAN: no_guardian,
        hoarding.SAFETY_RISK: safety_risk,
    }
    holds = _record_findings(ref, "hoarding findings", given, hoarding.record_findings)
    console.print(f"{ref}: 가정방문 확인 사항 기록 (recorded)")
    for code in holds:
        console.print(f"  {hoarding.label(code)}")
    console.print(f"다음 (next): yeongye approve {ref}")


@app.command()
def residents(
    complex_code: str | None = typer.Option(None, "--complex", help="단지 코드로 거르기"),
    as_json: bool = typer.Option(False, "--json"),
    purpose: str = typer.Option("case-work", "--purpose", help=_PURPOSE_HELP),
) -> None:
    """등록된 입주민 (개인정보: 등록부 안에서만; 열람은 감사 기록에 남음) / residents in the registry.

    내 센터의 입주민만 보이며, 열람은 로그인한 직원의 이름으로 기록됩니다
    (your centre's residents only; the read is recorded as the logged-in member of staff).
    """
    db, who = _signed_in(get_settings())
    actor, purpose = who.staff_id, _purpose(purpose)
    with db.transaction() as session:
        query = select(Resident).order_by(Resident.ref)
        if complex_code:
            try:
                access.check_read_complex(session, who, complex_code)
            except access.AccessDenied as error:
                raise _fail(str(error)) from None
            query = query.where(Resident.complex_code == complex_code)
        if (readable := access.readable_complexes(session, who)) is not None:
            query = query.where(Resident.complex_code.in_(readable))
        rows = [
            {
                "ref": r.ref,
                "complex": r.complex_code,
                "name": r.name,
                "building": r.building,
                "unit": r.unit,
                "phone": r.phone,
                "birth_year": r.birth_year,
                "lives_alone": r.lives_alone,
            }
            for r in session.scalars(query)
        ]
        for row in rows:
            trail.record_read(session, actor=actor, resident_ref=str(row["ref"]), purpose=purpose, what="residents")
    if as_json:
        return _print_json(rows)
    table = Table("참조 ref", "단지", "이름 name", "동", "호", "전화 phone", "출생 born", "독거 alone")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command()
def agencies(
    agency_type: str | None = typer.Option(None, "--type", help="기관 유형 코드로 거르기 / only this agency type"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """연계할 수 있는 기관: 유형(한국어), ID, 제공 서비스 / the agencies a case can be referred to."""
    db, _who = _signed_in(get_settings())
    if agency_type is not None and agency_type not in AGENCY_TYPE_CODES:
        raise _fail(f"--type: '{agency_type}'는 기관 유형 코드가 아닙니다 (not an agency type; yeongye agencies)")
    with db.transaction() as session:
        query = select(Agency).where(Agency.active.is_(True)).order_by(Agency.type_code, Agency.rank, Agency.id)
        if agency_type:
            query = query.where(Agency.type_code == agency_type)
        rows: list[dict[str, Any]] = [
            {
                "id": a.id,
                "type": a.type_code,
                "type_ko": a.type.name_ko,
                "name": a.name,
                "district": a.district,
                "services": list(a.services),
            }
            for a in session.scalars(query)
        ]
    if as_json:
        return _print_json(rows)
    table = Table("기관 유형 type", "ID", "이름 name", "지역 district", "서비스 services")
    for row in rows:
        table.add_row(
            f"{row['type_ko']} ({row['type']})", row["id"], row["name"], row["district"], ", ".join(row["services"])
        )
    console.print(table)


@app.command()
def services(as_json: bool = typer.Option(False, "--json")) -> None:
    """연계에 쓰는 서비스 코드와 이름 / the service codes a linkage names."""
    _signed_in(get_settings())
    rows = [{"service": code, "ko": ko, "en": en} for code, (ko, en) in sorted(SERVICES.items())]
    if as_json:
        return _print_json(rows)
    table = Table("서비스 service", "이름", "name")
    for row in rows:
        table.add_row(row["service"], row["ko"], row["en"])
    console.print(table)


@app.command()
def overdue(as_json: bool = typer.Option(False, "--json")) -> None:
    """기한이 지난 연계·결재, 담당자별·기관별 (내 센터; 중앙센터는 전부) / late handoffs and decisions."""
    db, who = _signed_in(get_settings())
    with db.transaction() as session:
        readable = access.readable_cases(session, who)
        rows = [
            row
            for row in deadlines.overdue(session, calendar.today(calendar.SystemClock()))
            if readable is None or row["case"] in readable
        ]
        failed = [m for m in outbox.listing(session, "failed") if readable is None or m["case"] in readable]
    if as_json:
        return _print_json(rows)
    for group, title in (("coordinator", "담당자별 (by coordinator)"), ("waiting_on", "기관·결재자별 (by agency)")):
        table = Table(
            "담당 / 기관", "사례 case", "대기 항목 what", "기한 due", "지연 days late", "단계 escalation", title=title
        )
        for row in sorted(rows, key=lambda r: (r[group], r["due"])):
            table.add_row(
                row[group], row["case"], row["what"], row["due"].isoformat(), str(row["days_late"]), row["escalation"]
            )
        console.print(table)
    _print_failed_mail(failed)


def _print_failed_mail(failed: list[dict[str, Any]]) -> None:
    """Mail the server refused for good waits for a person: say so wherever late work is shown."""
    for m in failed:
        console.print(
            f"[bold red]메일 전송 실패 (email refused)[/] ID {m['id']} {m.get('case', '')} {m['subject']}: "
            f"{m['last_error']} → 주소를 고친 뒤 (after fixing the address) yeongye outbox retry {m['id']}",
            highlight=False,
        )


@app.command("deadlines")
def run_deadlines() -> None:
    """기한 점검을 지금 실행합니다 (평소에는 근무시간 매시 자동) / run the deadline sweep now."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    _db, who = _signed_in(settings)
    try:
        access.check_case_worker(who, "deadlines")
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    with _prefect(settings):
        flow_run_id = steering.start_deadline_sweep()
    ui = settings.stack_info().get("ui_url") or f"http://127.0.0.1:{settings.prefect_port}"
    console.print(f"기한 점검 시작 (deadline sweep started): {ui}/runs/flow-run/{flow_run_id}")


@app.command("sweep")
def run_sweep(
    file: Path = typer.Argument(..., help="관리사무소 위기 신호 CSV (UTF-8 또는 CP949) / risk-signal CSV"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """위기가구 발굴: 신호 파일을 들여와 규칙별로 표시하고 outreach 사례를 엽니다 / detection sweep."""
    from yeongye import steering  # imports Prefect: only for the commands that need it

    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        access.check_case_worker(who, "sweep")
        with db.transaction() as session:
            complexes = access.readable_complexes(session, who)
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    try:
        report = detection.sweep(db, file, now=calendar.SystemClock().now(), actor=who.staff_id, complexes=complexes)
    except detection.SweepFileError as error:
        problems = "\n".join(error.problems)
        raise _fail(f"{file.name}: 파일을 들여오지 않았습니다 (nothing imported)\n{problems}") from None
    try:
        with _prefect(settings):
            launched = steering.launch_pending_outreach(db)
        pending, reason = launched.pending, launched.reason
    except Exception as error:  # Prefect not running: the cases stay pending for the next sweep
        with db.transaction() as session:
            pending = [ref for ref, _ in detection.pending_outreach(session)]
        reason = f"Prefect 연결 실패 (cannot reach Prefect: {type(error).__name__})"
    rows = report.table()
    if as_json:
        return _print_json(
            {
                "sweep_id": report.sweep_id,
                "encoding": report.encoding,
                "complexes": rows,
                "new_cases": report.new_case_refs,
                "launch_pending": pending,
            }
        )
    table = Table(*rows[0].keys(), title=f"위기가구 발굴 (detection sweep) #{report.sweep_id}, {report.encoding}")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    if report.new_case_refs:
        console.print(f"신규 outreach 사례 (new cases): {', '.join(report.new_case_refs)}")
    if pending:
        console.print(f"flow 시작 대기 (launch pending): {len(pending)}건, {reason}")


@app.command("holiday")
def holiday(
    day: str = typer.Argument(..., help="날짜 YYYY-MM-DD"),
    name: str = typer.Argument(..., help="이름, 예: 임시공휴일"),
    working_day: bool = typer.Option(
        False, "--working-day", help="공휴일이 아니라 근무일로 지정 / mark as a working day"
    ),
) -> None:
    """나중에 지정된 임시공휴일(또는 취소)을 기한 계산에 반영합니다 / record a holiday override."""
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise _fail(f"day: '{day}'는 YYYY-MM-DD 날짜가 아닙니다 (not a date)") from None
    db, who = _signed_in(get_settings())
    try:
        # Business-day clocks of every centre move with it: the central centre's admin sets it.
        access.check_admin(who, "holiday", central_only=True)
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    with db.transaction() as session:
        before = session.get(HolidayOverride, date)
        previous = {"name": before.name, "holiday": before.holiday} if before else None
        session.merge(HolidayOverride(day=date, name=name, holiday=not working_day))
        # Business-day deadlines (legal ones among them) move with it: who moved them is recorded.
        trail.record(
            session,
            actor=who.staff_id,
            action="holiday-override",
            day=date.isoformat(),
            name=name,
            holiday=not working_day,
            previous=previous,
        )
    console.print(f"{date.isoformat()} {name}: {'근무일 (working day)' if working_day else '공휴일 (holiday)'}")


@app.command("audit")
def audit_command(
    resident: str = typer.Option("", "--resident", help="입주민 참조번호 / resident reference, e.g. R-D-001"),
    verify: bool = typer.Option(
        False, "--verify", help="해시 체인 검증, 변조 시 종료 코드 1 / check the hash chain, exit 1 if tampered"
    ),
    purpose: str = typer.Option("audit-review", "--purpose", help=_PURPOSE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """감사 기록: 입주민에 관한 열람·제공·결정 전부(언제, 누가, 무엇을, 어떤 근거·목적으로), 또는 체인 검증.

    (the audit trail: every read, disclosure and decision concerning a resident, or --verify)
    """
    if bool(resident) == verify:
        raise _fail("--resident / --verify: 둘 중 하나만 주십시오 (give exactly one of --resident and --verify)")
    db, who = _signed_in(get_settings())
    if verify:
        if who.role not in (access.CENTRE_ADMIN, access.CENTRAL):
            raise _fail("--verify: 센터 관리자나 중앙센터가 점검합니다 (a centre admin or the central centre checks)")
        with db.transaction() as session:
            verdict = trail.verify(session)
        if as_json:
            _print_json(
                {
                    "ok": verdict.ok,
                    "rows": verdict.rows,
                    "bad_row": verdict.bad_id,
                    "problem": verdict.problem,
                    "head": verdict.last_hash if verdict.ok else None,
                }
            )
        elif verdict.ok:
            console.print(f"감사 기록 체인 정상 (audit chain intact): {verdict.rows}건 (rows)")
        else:
            errors.print(f"[bold red]감사 기록 변조 (audit trail tampered):[/] {verdict.problem}", highlight=False)
        if not verdict.ok:
            raise typer.Exit(code=1)
        return
    try:
        ref = clean_text(resident, "--resident", ID_MAX)
    except cases.CaseError as error:
        raise _fail(str(error)) from None
    actor, purpose = who.staff_id, _purpose(purpose)
    with db.transaction() as session:
        # Who did what to a resident is itself personal data: reading it is a read like any other.
        try:
            access.check_read_resident(session, who, ref)
        except cases.CaseError as error:
            raise _fail(str(error)) from None
        entries = trail.for_resident(session, ref)
        case_refs = dict(
            session.execute(select(Case.id, Case.ref).where(Case.id.in_({e.case_id for e in entries if e.case_id})))
            .tuples()
            .all()
        )
        rows = [_audit_row(entry, case_refs.get(entry.case_id or 0)) for entry in entries]
        trail.record_read(session, actor=actor, resident_ref=ref, purpose=purpose, what="audit-trail")
    if as_json:
        return _print_json(rows)
    table = Table(
        "시각 when (Asia/Seoul)",
        "누가 who",
        "무엇 what",
        "근거·목적 basis/purpose",
        "사례 case",
        title=f"{ref}: 열람·제공·결정 기록 (reads, disclosures, decisions)",
    )
    for row in rows:
        table.add_row(row["at"][:19].replace("T", " "), row["actor"], row["what"], row["basis"], row["case"] or "-")
    console.print(table)
    if not rows:
        console.print("기록 없음 (no entries)")


def _audit_row(entry: AuditEntry, case_ref: str | None) -> dict[str, Any]:
    """One audit row as a person reads it: Seoul time, the act in words, its basis or purpose."""
    detail: dict[str, Any] = dict(entry.detail or {})
    if entry.action == "read":
        what = f"{trail.action_label('read')}: {detail.get('what', '')}"
    else:
        shown = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("basis", "reason") and v not in ("", None))
        what = trail.action_label(entry.action) + (f": {shown}" if shown else "")
    if entry.purpose:
        basis = trail.purpose_label(entry.purpose)
    elif detail.get("basis"):
        basis = f"근거 (basis): {detail['basis']}"
    elif detail.get("reason"):
        basis = f"사유 (reason): {detail['reason']}"
    else:
        basis = "-"
    return {
        "id": entry.id,
        "at": trail.utc(entry.at).astimezone(calendar.SEOUL).isoformat(timespec="seconds"),
        "actor": entry.actor,
        "action": entry.action,
        "what": what,
        "basis": basis,
        "purpose": entry.purpose,
        "case": case_ref,
        "resident": entry.resident_ref,
        "detail": detail,
    }


@app.command()
def mail(as_json: bool = typer.Option(False, "--json"), limit: int = typer.Option(50, "--limit")) -> None:
    """로컬 캡처 서버가 받은 메일, 내 센터 사례의 것만 / messages the local SMTP capture kept, of your centre's cases.

    --json 은 본문(기관에 제공된 개인정보가 있을 수 있음)을 보여 주므로 열람으로 기록됩니다
    (--json shows the bodies, which may hold what was disclosed to an agency: recorded as a read).
    """
    settings = get_settings()
    db, who = _signed_in(settings)
    with db.transaction() as session:
        readable = access.readable_cases(session, who)
        messages = [
            m
            for m in read_captured(settings.mail_dir)
            if readable is None or m.headers.get("X-Yeongye-Case", "") in readable
        ][-limit:]
        if as_json:
            shown = {m.headers.get("X-Yeongye-Case", "") for m in messages}
            for case_ref, resident_ref in session.execute(
                select(Case.ref, Case.resident_ref).where(Case.ref.in_(shown), Case.resident_ref.is_not(None))
            ).tuples():
                trail.record_read(
                    session,
                    actor=who.staff_id,
                    resident_ref=str(resident_ref),
                    purpose="case-work",
                    what=f"mail {case_ref}",
                )
    rows: list[dict[str, Any]] = [
        {
            "received_at": m.received_at.isoformat(),
            "to": m.to,
            "subject": m.subject,
            "case": m.headers.get("X-Yeongye-Case", ""),
            "message_id": m.message_id,
            "text": m.text,
        }
        for m in messages
    ]
    if as_json:
        return _print_json(rows)
    table = Table("받은 시각 received", "수신 to", "사례 case", "제목 subject")
    for row in rows:
        table.add_row(row["received_at"], ", ".join(row["to"]), row["case"], row["subject"])
    console.print(table)


_OUTBOX_STATUS_LABELS = {"pending": "대기", "sending": "보내는 중", "sent": "보냄", "failed": "실패"}


@outbox_app.callback(invoke_without_command=True)
def outbox_list(
    ctx: typer.Context,
    status: str | None = typer.Option(
        None,
        "--status",
        help="pending(대기) / sending(보내는 중) / sent(보냄) / failed(실패); 기본: 보내지 못한 것 전부",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """보내지 못한 메일(대기·실패) 목록 / messages not sent yet, and those the mail server refused."""
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in _OUTBOX_STATUS_LABELS:
        raise _fail(f"--status: {', '.join(_OUTBOX_STATUS_LABELS)} 중 하나여야 합니다 (unknown status)")
    db, who = _signed_in(get_settings())
    with db.transaction() as session:
        readable = access.readable_cases(session, who)
        rows = [row for row in outbox.listing(session, status) if readable is None or row["case"] in readable]
    if as_json:
        return _print_json(rows)
    table = Table(
        "ID", "사례 case", "수신 to", "상태 status", "시도 attempts", "다음 시도 next", "오류 error", "제목 subject"
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["case"],
            row["to"],
            f"{_OUTBOX_STATUS_LABELS[row['status']]} ({row['status']})",
            str(row["attempts"]),
            _seoul(row["next_attempt_at"]),
            row["last_error"] or "",
            row["subject"],
        )
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(message_id: int = typer.Argument(..., help="yeongye outbox 의 ID")) -> None:
    """실패한 메일을 등록부의 현재 주소로 다시 보냅니다 (릴레이가 곧 보냄) / send a failed message again."""
    db, who = _signed_in(get_settings())
    try:
        with db.transaction() as session:
            queued = session.get(OutboxMessage, message_id)
            if queued is not None:
                access.check_work_on_case(session, who, session.get_one(Case, queued.case_id), "outbox retry")
            message = outbox.retry(session, message_id, calendar.SystemClock().now())
            to_addr = message.to_addr
    except (outbox.OutboxError, access.AccessDenied) as error:
        raise _fail(str(error)) from None
    console.print(f"다시 보냄 대기 (queued again): {message_id} → {to_addr}")


def _seoul(value: dt.datetime | None) -> str:
    """A time as people here read it: Asia/Seoul, to the minute (SQLite keeps the clock's Seoul time without a zone)."""
    if value is None:
        return ""
    local = value.replace(tzinfo=calendar.SEOUL) if value.tzinfo is None else value.astimezone(calendar.SEOUL)
    return f"{local:%Y-%m-%d %H:%M}"


@app.command()
def doctor(
    repair: bool = typer.Option(False, "--repair", help="고칠 수 있는 것을 고칩니다 / mend what can be mended"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """열린 사례마다 flow run 이 살아 있는지 점검 / check that every open case has a live process.

    종료 코드: 사람이 판단해야 하거나 아직 고치지 못한 것이 있으면 1 (exit 1 when anything is left).
    """
    from yeongye import recovery

    settings = get_settings()
    db, who = _signed_in(settings)
    try:
        # Every centre's runs are looked at and mended: an administrator's task, seen by the central centre.
        if repair or who.role != access.CENTRAL:
            access.check_admin(who, "doctor --repair" if repair else "doctor")
    except access.AccessDenied as error:
        raise _fail(str(error)) from None
    with _prefect(settings):
        findings = recovery.examine(db, repair=repair)
    if as_json:
        _print_json([finding.__dict__ for finding in findings])
    elif not findings:
        console.print("모든 열린 사례가 정상입니다 (every open case has a live flow run)")
    else:
        table = Table("사례 case", "문제 problem", "조치 action", "flow run")
        for f in findings:
            table.add_row(f.case_ref, recovery.PROBLEMS[f.problem], recovery.ACTIONS[f.action], f.flow_run_id or "-")
        console.print(table)
    if any(finding.action != "repaired" for finding in findings):
        raise typer.Exit(code=1)
