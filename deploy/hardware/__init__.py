"""Hardware estimates: layers onto neurocores (``mapping``), SANA-FE neurocore simulation
(``neurocore``, ``loihi_arch``), the dense accelerator roofline, links, the Tianjic
hybrid chip, and the per-video report of every stage (``report``)."""
