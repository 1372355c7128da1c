"""The record contract's names (attributes, events, name rules), kept at this documented
path; they live in `exporters.contract`, which both layers import."""

from exporters.contract import *  # noqa: F403
