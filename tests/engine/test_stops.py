from engine.stops import StopMatcher


def test_stop_string_split_across_deltas_is_cut_and_never_shown():
    m = StopMatcher(["\n```\n", "END"])
    shown = []
    for delta in ["print(1)", "\n``", "`\n", "more"]:
        text, hit = m.feed(delta)
        shown.append(text)
        if hit:
            break
    assert "".join(shown) == "print(1)" and hit


def test_held_back_prefix_is_released_when_it_does_not_complete():
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False)
    assert m.feed("ay") == ("STay", False)
    assert m.feed("x S") == ("x ", False)
    assert m.flush() == "S"


def test_no_stops_passes_everything():
    m = StopMatcher([])
    assert m.feed("a") == ("a", False) and m.flush() == ""
