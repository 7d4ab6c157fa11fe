# The pages: "7 Dec 2026 14:05", day first, the month's abbreviation, a 24-hour clock. (A notice's due dates keep
# Django's DATE_FORMAT, written out in full: "March 7, 2025".)
SHORT_DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
SHORT_DATETIME_FORMAT = "j M H:i:s"  # the delivery log's attempts, to the second
