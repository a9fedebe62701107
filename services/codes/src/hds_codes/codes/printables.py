"""QR codes (segno) and the printable carrier sheet (fpdf2) of an access code."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

import segno
from fpdf import FPDF

__all__ = ["carrier_sheet_pdf", "qr_png", "qr_svg"]

# Level M survives a fold or a smudge on paper and keeps a portal link at version 3-4.
_ERROR_LEVEL = "m"
_QUIET_ZONE = 4


def _qr(link: str) -> segno.QRCode:
    return segno.make_qr(link, error=_ERROR_LEVEL, boost_error=False)


def qr_svg(link: str) -> bytes:
    buffer = io.BytesIO()
    # No width/height but a viewBox: the SVG scales to whatever box it is put in.
    _qr(link).save(
        buffer, kind="svg", scale=1, border=_QUIET_ZONE, omitsize=True, xmldecl=True, nl=True
    )
    return buffer.getvalue()


def qr_png(link: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    _qr(link).save(buffer, kind="png", scale=scale, border=_QUIET_ZONE)
    return buffer.getvalue()


# Letters that do not decompose into a base letter and an accent.
_SPELLED = str.maketrans(
    {
        "\u0141": "L",
        "\u0142": "l",
        "\u0110": "D",
        "\u0111": "d",
        "\u0126": "H",
        "\u0127": "h",
        "\u0131": "i",
        "\u0152": "OE",
        "\u0153": "oe",
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": ",",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2026": "...",
        "\u20ac": "EUR",
    }
)


def _latin1(text: str) -> str:
    """The built-in PDF fonts cover Latin-1 only: keep what they can show, spell other
    letters without their accents, and replace the rest."""
    out = []
    for char in text.translate(_SPELLED):
        try:
            char.encode("latin-1")
            out.append(char)
            continue
        except UnicodeEncodeError:
            pass
        plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        out.append(plain or "?")
    return "".join(out)


_PATIENT_TEXT = (
    "Your imaging results (images and reports) are ready. Open the link above, or scan "
    "the QR code with your phone, and enter the access code together with your date of "
    "birth. You can view and download the examinations, or import them into your own "
    "account so that they stay available after the code has expired."
)
_REFERRER_TEXT = (
    "Referring physicians: with the patient's consent, use the same code and date of "
    "birth in the portal, or in any viewer or system that supports the DICOM Link "
    "Exchange (DIN/TS 19455): give it the link above."
)
_SAFETY_TEXT = (
    "Keep this sheet safe: together with the date of birth the code opens the "
    "examinations. Several wrong attempts lock the code for a while. The institution "
    "that issued it can reactivate an expired code."
)


def carrier_sheet_pdf(
    *,
    institution: str,
    code: str,
    link: str,
    expires_at: dt.datetime,
) -> bytes:
    """An A4 sheet: institution, code, QR code of the portal link, expiry, instructions."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title("Access to your imaging results")
    pdf.set_author(_latin1(institution))
    pdf.set_creator("HDS suite")
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(left=20, top=20, right=20)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font("Helvetica", style="B", size=18)
    pdf.multi_cell(width, 9, _latin1(institution), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=13)
    pdf.cell(width, 8, "Access to your imaging results", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    top = pdf.get_y()
    qr_size = 60
    pdf.image(io.BytesIO(qr_png(link, scale=12)), x=pdf.l_margin, y=top, w=qr_size, h=qr_size)
    text_x = pdf.l_margin + qr_size + 8
    text_width = width - qr_size - 8
    pdf.set_xy(text_x, top + 4)
    pdf.set_font("Helvetica", size=11)
    pdf.cell(text_width, 6, "Access code")
    pdf.set_xy(text_x, top + 11)
    pdf.set_font("Courier", style="B", size=24)
    pdf.cell(text_width, 12, code)
    pdf.set_xy(text_x, top + 27)
    pdf.set_font("Helvetica", size=11)
    pdf.cell(text_width, 6, f"Valid until {expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")
    pdf.set_xy(text_x, top + 37)
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(text_width, 5, _latin1(link))

    pdf.set_xy(pdf.l_margin, top + qr_size + 10)
    for heading, text in (
        ("For patients", _PATIENT_TEXT),
        ("For referring physicians", _REFERRER_TEXT),
        ("Please note", _SAFETY_TEXT),
    ):
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.cell(width, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(width, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    return bytes(pdf.output())
