"""From image pixels to the floor plan: where each detected person stands, in metres.

`calibration` fits and checks each camera's image-to-floor homography when the node starts.
"""
