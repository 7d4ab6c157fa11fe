# The pages: "7 dic 2026 14:05", as in English with the month in lower case, as Spanish writes it. (A notice's due
# dates keep Django's DATE_FORMAT, written out in full: "7 de marzo de 2025".)
SHORT_DATE_FORMAT = "j b Y"
DATETIME_FORMAT = "j b Y H:i"
SHORT_DATETIME_FORMAT = "j b H:i:s"  # the delivery log's attempts, to the second
