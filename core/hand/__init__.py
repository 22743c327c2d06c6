"""The hand model: MANO-format arrays and loading, forward kinematics and skinning, official MANO pickles."""
