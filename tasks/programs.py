"""Steps of a partner programme that touch the registry: they run here, so the flow sees only counts.

Invitations, enrolment and attendance are personal data and stay in the registry
(``registry.programs``); these tasks return the programme's kind, counts, dates and agency ids.

Each task's parameter names are its own: the replay cache key is the inputs plus the flow run id,
without the task's identity (``tasks.retry``), so two tasks called with the same named inputs in
one run would share one result.
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from registry import calendar, programs
from registry.programs import PLANNING_STEP, Partner, ProgramKind, Recruitment
from tasks import runtime
from tasks.case import escaped
from tasks.log import logger
from tasks.retry import handoff_task


@handoff_task(name="program-kind", task_run_name="kind-of-{case_ref}")
def program_kind(case_ref: str) -> ProgramKind:
    """Which programme the case runs, as stored when it was launched: its partners and cadence.

    Read once and replayed, so a case keeps the partners it was planned with across a redeploy.
    """
    with runtime.transaction() as session:
        return programs.kind_of(programs.program_case(session, case_ref))


@handoff_task(name="open-recruitment", task_run_name="recruitment-{sessions}x")
def open_recruitment(case_ref: str, sessions: int, seats: int) -> Recruitment:
    """Plan the sessions at the kind's cadence from today and invite residents, isolated ones first (counts only)."""
    with runtime.transaction() as session:
        case = programs.program_case(session, case_ref)
        recruitment = programs.open_recruitment(
            session,
            case,
            sessions=sessions,
            seats=seats,
            first_day=calendar.today(runtime.clock()),
            days=runtime.business_calendar(session),
            at=runtime.clock().now(),
        )
    logger(case_ref, "recruitment").info(
        "recruitment-opened", invited=recruitment.invited, invited_alone=recruitment.invited_alone
    )
    return recruitment


@handoff_task(name="count-enrolled", task_run_name="enrolled-after-{enrolled_after}")
def count_enrolled(case_ref: str, enrolled_after: str) -> int:
    """How many residents are enrolled; ``enrolled_after`` names the wait it follows (one result each)."""
    with runtime.transaction() as session:
        return int(programs.summary(session, programs.program_case(session, case_ref))["enrolled"])


@handoff_task(name="record-session", task_run_name="session-{session_number}-{held}")
def record_session(case_ref: str, session_number: int, held: bool) -> int:
    """Confirm a session as held or cancelled; returns its attendance count (the roll stays in the registry)."""
    with runtime.transaction() as session:
        case = programs.program_case(session, case_ref)
        attended = programs.record_session(session, case, session_number, held=held, at=runtime.clock().now())
    logger(case_ref, f"session-{session_number}").info("session-recorded", held=held, attended=attended)
    return attended


@handoff_task(name="program-partners", task_run_name="partners-of-{planning_step}")
def program_partners(case_ref: str, planning_step: str = PLANNING_STEP) -> list[Partner]:
    """The agencies that completed the joint planning, the lead first (none if every one declined)."""
    with runtime.transaction() as session:
        return programs.partners(session, programs.program_case(session, case_ref), planning_step)


@handoff_task(name="program-report", task_run_name="report-artifact-{report_step}")
def publish_report(case_ref: str, report_step: str) -> dict[str, int]:
    """The programme's results in counts, as an artifact (``program-c-2026-0001``) and as the result.

    The partners are told in the ``report_step`` handoff; the roll of names never leaves the registry.
    """
    with runtime.transaction() as session:
        report = programs.summary(session, programs.program_case(session, case_ref))
    create_markdown_artifact(
        key="program-" + case_ref.lower(),
        markdown=_markdown(report),
        description=f"{case_ref} {report['kind_title']} 결과 보고 (report)",
    )
    return {
        key: int(report[key])
        for key in ("invited", "invited_alone", "enrolled", "enrolled_alone", "sessions_held", "attendances")
    }


def _markdown(report: dict) -> str:  # type: ignore[type-arg]
    """The report as the Prefect artifact shows it: counts, dates, codes and agency ids, each escaped
    (``tasks.case.escaped``), as on the case timeline; agency ids are typed by people."""
    e = escaped
    lines = [
        f"# {e(report['case'])} · {e(report['kind_title'])} 결과 보고 (report) · {e(report['complex'])}단지",
        f"협력 기관 (partners): {', '.join(e(p) for p in report['partners']) or '-'}",
        "",
        f"- 초대 (invited): {e(report['invited'])}명, 그중 독거 (living alone) {e(report['invited_alone'])}명",
        f"- 참여 (enrolled): {e(report['enrolled'])}명, 그중 독거 (living alone) {e(report['enrolled_alone'])}명",
        f"- 회기 (sessions): {e(report['sessions_held'])} / {e(report['sessions_planned'])} 진행 (held)",
        f"- 연인원 출석 (attendances): {e(report['attendances'])}",
        "",
        "| 회기 | 예정일 | 상태 | 출석 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {e(s['number'])} | {e(s['planned_on'])} | {e(s['status'])} | {e(s['attended'])} |"
        for s in report["sessions"]
    ]
    return "\n".join(lines)
