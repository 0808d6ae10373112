"""Reading a user's media, below both the corpus builders (``dldfd_hf.data``) and the detector
(``dldfd_hf.inference``): file kinds and errors, images, video readers, face detection and crops."""
