"""A flow's code changes while cases wait in it: after the redeploy they resume and finish.

The new code adds a step after the wait the case is on. Finished steps replay from their
persisted results (their cache keys do not hold the task's source), so nothing is asked or sent
twice; the new step runs when the case reaches it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from flows.mental_health import counselling
from registry.db import Database
from tasks.handoffs import Need, hand_off
from tests.driving import Answers, coordinator_of, drive, read_case, referral_steps, run_once
from yeongye import steering
from yeongye.mailcapture import MailCapture, read_captured


def test_cases_waiting_in_changed_code_resume_and_finish(
    prefect_server: None, registry: Database, mail: MailCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = counselling.mh_counselling
    flow.to_deployment(name=flow.name).apply()
    launched = steering.launch(
        registry, intervention=flow.name, complex_code="C", resident_ref="R-C-002", by=coordinator_of(registry, "C")
    )
    answers = Answers(registry, launched.case_ref, outcomes={"counselling": counselling.REGISTERED})
    while True:  # intake and consent answered; the case then waits on the centre's counselling answer
        run_once(launched.flow_run_id, flow)
        wait = steering.current_wait(registry, launched.case_ref)
        if wait.step == "counselling":
            break
        answers.answer(wait)
    sent_before = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))

    # Version 2 of the flow, deployed while the case waits: an exit interview before closure.
    closing = counselling.close_with_approval

    def exit_interview_then_close(case_ref: str, outcome: str) -> str:
        hand_off(case_ref, "exit-interview", [Need("welfare-center", "supplies-programs")])
        return closing(case_ref, outcome)

    monkeypatch.setattr(counselling, "close_with_approval", exit_interview_then_close)
    final = drive(answers, launched.flow_run_id, flow=flow, max_waits=30)

    assert final.state is not None and final.state.is_completed(), final.state
    assert read_case(registry, launched.case_ref).status == "closed"
    assert referral_steps(registry, read_case(registry, launched.case_ref))["exit-interview"][1] == "completed"
    sent = Counter(m.headers["X-Yeongye-Key"] for m in read_captured(mail.mail_dir))
    assert max(sent.values()) == 1  # nothing sent before the redeploy went out again
    assert set(sent_before) < set(sent)
    assert any(":exit-interview:" in key for key in sent)
