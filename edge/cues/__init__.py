"""What the node reads from pixels beyond the detector's boxes, on the box only.

`appearance`: re-identification embeddings of person boxes, computed when the tracker asks for them.
`uniform`: whether a person's torso shows the staff uniform colour.
Frames and crops never leave these modules; what leaves is an embedding handed to the tracker, or a set of
track ids.
"""
