"""From image pixels to the floor plan: where each detected person stands, in metres, with its uncertainty.

One time step's detections take this path: `projection` (boxes checked against the image, a foot point per
box, projected through the camera's `calibration` with a covariance; `feet` stands the boxes a display car
cut short) -> `fusion` (one floor detection per person however many cameras see them). `calibration` fits
and checks each camera's image-to-floor homography when the node starts; `overlay` sizes the boxes drawn for
confirmed tracks (MOT output).
"""
