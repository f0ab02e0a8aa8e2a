"""Slack Block Kit drawn for the gallery: Slack's escapes undone once, typed markup inert, links and mentions shown."""

from __future__ import annotations

from comms.reports.slack_view import mrkdwn_html, slack_view


def test_slack_escapes_show_as_the_characters_once() -> None:
    """`&gt;` from Slack escaping shows as '>' (escaped once for HTML), never as the text '&gt;'."""
    assert str(mrkdwn_html("error rate &gt; 5 % &amp; p95 &lt; 5 s")) == "error rate &gt; 5 % &amp; p95 &lt; 5 s"
    assert "&amp;gt;" not in str(mrkdwn_html("a &gt; b"))


def test_typed_markup_stays_text() -> None:
    """A value holding <script> (Slack-escaped by rendering) forms no tag in the drawn HTML."""
    html = str(mrkdwn_html('&lt;script&gt;alert(1)&lt;/script&gt; "onload=x'))
    assert "<script>" not in html and "&lt;script&gt;" in html and "&#34;onload=x" in html


def test_links_mentions_and_styles_are_drawn() -> None:
    """<url|label> is a link, <@U|name> and <#C|name> are mentions, *b* _i_ `c` are styled, '> ' quotes."""
    html = str(
        mrkdwn_html("*Go* _now_ `x`: <https://a.example/d?x=1&amp;y=2|dash> <@U1|oncall> <#C1|war-room>\n&gt; quoted")
    )
    assert '<a href="https://a.example/d?x=1&amp;y=2" rel="noopener noreferrer">dash</a>' in html
    assert '<span class="mention">@oncall</span>' in html and '<span class="mention">#war-room</span>' in html
    assert "<b>Go</b>" in html and "<i>now</i>" in html and "<code>x</code>" in html
    assert html.endswith("<blockquote>quoted</blockquote>")


def test_a_link_that_is_not_http_is_text() -> None:
    """<javascript:...|x> is shown as text, never as a link."""
    html = str(mrkdwn_html("<javascript:alert(1)|click>"))
    assert "<a " not in html and "javascript:alert(1)|click" in html


def test_blocks_become_header_sections_and_context() -> None:
    """Each block keeps its kind; a plain_text header is not read as mrkdwn; emoji codes are drawn."""
    views = slack_view(
        [
            {"type": "header", "text": {"type": "plain_text", "text": "Done *now* :tada:"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*bold*"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "T0 _x_"}]},
        ]
    )
    assert [v.kind for v in views] == ["header", "section", "context"]
    assert str(views[0].html) == "Done *now* 🎉" and str(views[1].html) == "<b>bold</b>"
    assert str(views[2].html) == "T0 <i>x</i>"
