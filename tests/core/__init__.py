"""Tests of corec.core."""
