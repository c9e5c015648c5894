"""The spiking partition on neurocores: layers onto cores under a chip's limits
(``mapping``; its file and table: ``mapping_file``), SANA-FE's simulation of them
(``simulation``, on the architecture ``loihi_arch`` generates), and the first,
graded-input layer's time (``layer1``)."""
