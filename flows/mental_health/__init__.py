"""Mental-health interventions (응급입원, 행정입원, community linkage): see issue 4."""
