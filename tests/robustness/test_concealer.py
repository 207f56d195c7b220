"""The concealment bookkeeping on its own (pure logic; the real-stream tests are in test_decode_damage)."""

from __future__ import annotations

from genpost.media.damage import Concealer


def run(sent, decoded):
    c = Concealer(timed=True)
    for pts in sent:
        c.sent_packet(pts)
    shown = []
    for pts in decoded:
        lost, pts, keep = c.place(pts)
        shown += [("concealed", q) for q in lost] + ([("decoded", pts)] if keep else [])
    tail, unplaced = c.finish()
    return shown + [("concealed", q) for q in tail], c


def test_a_picture_missing_in_the_middle_is_concealed_in_place():
    # decode order of an IBBP stream; the B picture at pts 2 never comes out
    shown, _ = run([0, 3, 1, 2, 6, 4, 5], [0, 1, 3, 4, 5, 6])
    assert shown == [("decoded", 0), ("decoded", 1), ("concealed", 2), ("decoded", 3), ("decoded", 4),
                     ("decoded", 5), ("decoded", 6)]  # fmt: skip


def test_missing_tail_late_and_duplicate_pictures():
    shown, _ = run([0, 1, 2, 3, 4], [0, 2, 1, 2, 3])
    assert shown == [("decoded", 0), ("concealed", 1), ("decoded", 2), ("decoded", 3), ("concealed", 4)]


def test_pictures_before_the_first_one_shown_are_skipped_not_concealed():
    shown, c = run([8, 6, 7, 12, 10, 11], [8, 10, 11, 12])  # a cut at an open-GOP keyframe: 6, 7 never shown
    assert shown == [("decoded", 8), ("decoded", 10), ("decoded", 11), ("decoded", 12)]
    assert c.leading == 2


def test_untimed_streams_count_what_they_cannot_place():
    c = Concealer(timed=False)
    for _ in range(5):
        c.sent_packet(None)
    for _ in range(3):
        assert c.place(None) == ([], None, True)
    assert c.finish() == ([], 2)


def test_a_gap_in_a_steady_ts_cadence_is_a_lost_picture():
    """MPEG-TS: the parser merged a damaged picture into its neighbour, taking its timestamp along."""
    c = Concealer(timed=True, step=3003)
    sent = [i * 3003 for i in range(12) if i != 10]  # the timestamp of picture 10 never reaches a packet
    for pts in sent:
        c.sent_packet(pts)
    concealed = []
    for pts in sent:
        lost, _, keep = c.place(pts)
        concealed += lost
    assert concealed == [30030]


def test_no_cadence_no_guess():
    c = Concealer(timed=True, step=3003)
    sent = [0, 3003, 7507, 10510, 16516, 19519]  # 1.5 frame durations: variable rate, so gaps are its own
    for pts in sent:
        c.sent_packet(pts)
    assert all(c.place(pts)[0] == [] for pts in sent)
